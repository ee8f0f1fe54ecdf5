"""Alerts: raised once per cause, emailed once, shown, acknowledged (audited), resolved when the cause is gone."""

from __future__ import annotations

import inspect
import threading
from datetime import datetime, timedelta
from smtplib import SMTPException
from typing import Any

import django_rq
import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import close_old_connections, connection, transaction
from django.test import Client

from audit.log import Actor
from audit.models import AuditEvent
from mailboxes.models import Mailbox, Membership, Role
from monitoring import alerts
from monitoring.alerts import raise_alert, send_email
from monitoring.models import Alert, AlertKind, AlertStatus
from syncjobs.engine import recover_stale
from syncjobs.models import RunStatus, SyncRun
from syncjobs.scheduler import tick
from tests.conftest import client_for, make_user
from tests.monitoring.conftest import enabled, finished_run, in_each_state, queue_mailbox, send_queued_emails

pytestmark = pytest.mark.django_db


class RefusingBackend(BaseEmailBackend):
    """A mail server that is down."""

    def send_messages(self, messages: Any) -> int:
        raise SMTPException("421 Service not available")


def use_mailer(settings: Any, backend: str) -> None:
    settings.MAILERS = {"default": {"BACKEND": backend}}


# Raised once, emailed once


def test_an_alert_is_raised_once_and_emailed_once_however_often_raised(
    alice_mailbox: Mailbox, admin: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any, rq_queues: str
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=alice_mailbox, channel="act", detail="HTTP 401")
        for _ in range(5):
            assert raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=alice_mailbox, channel="act") is None
    assert first is not None and Alert.objects.get() == first
    assert mail.outbox == []  # queued: a worker sends it
    send_queued_emails()
    [message] = mail.outbox
    assert message.to == ["admin@example.com", "alice@example.com"]  # the administrators and the owner; not bob
    assert message.subject == "[CRM Sync Portal] Channel disabled: alice@example.com"
    assert "“Appointments, contacts and tasks” of mailbox alice@example.com was disabled" in message.body
    assert "HTTP 401" in message.body and "Test & Enable again" in message.body
    first.refresh_from_db()
    assert first.emailed_at is not None
    assert send_email(first.pk) is False  # a retry, a restart: never a second email
    assert len(mail.outbox) == 1


def test_another_channel_or_kind_is_another_alert(alice_mailbox: Mailbox, profile: Any) -> None:
    raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=alice_mailbox, channel="act")
    raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=alice_mailbox, channel="incoming")
    raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox)
    raise_alert(AlertKind.PROFILE_FLAGGED, profile=profile, data={"failing": 2, "total": 3})
    assert Alert.objects.count() == 4


def test_an_alert_raised_again_after_it_was_resolved_is_a_new_one(alice_mailbox: Mailbox) -> None:
    old = raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox)
    Alert.objects.filter(pk=old.pk).update(status=AlertStatus.RESOLVED)
    assert raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox) is not None
    # Acknowledged is not resolved: the cause is still there, nothing new.
    Alert.objects.filter(status=AlertStatus.OPEN).update(status=AlertStatus.ACKNOWLEDGED)
    assert raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox) is None


def test_a_rolled_back_alert_is_not_emailed(alice_mailbox: Mailbox, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox)
            raise RuntimeError("the run failed")
    assert not Alert.objects.exists() and mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_raisers_make_one_alert_and_one_email(alice_mailbox: Mailbox, admin: Any, rq_queues: str) -> None:
    """Eight workers find the same cause at once, each in its own transaction and connection."""
    start = threading.Barrier(8)
    raised: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            with transaction.atomic():
                raised.append(raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox, detail="40 of 50"))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert errors == []
    assert len([a for a in raised if a is not None]) == 1
    assert Alert.objects.count() == 1
    send_queued_emails()
    assert len(mail.outbox) == 1


def test_a_queue_mailbox_alert_goes_to_the_administrators(org: Any, profile: Any, admin: Any, now: datetime) -> None:
    no_address = get_user_model().objects.create_user("no-address")
    gone = make_user("gone", is_active=False)
    for user in (make_user("second-admin"), no_address, gone):
        Membership.add(Actor.system(), user, org, Role.ADMINISTRATOR)
    mailbox = queue_mailbox(org, profile, "support")
    alert = Alert.objects.create(organization=org, kind=AlertKind.MASS_DELETE_REFUSED, mailbox=mailbox)
    assert alerts.recipients(alert) == ["admin@example.com", "second-admin@example.com"]


def test_an_email_that_failed_is_sent_by_a_later_pass(
    alice_mailbox: Mailbox, admin: Any, settings: Any, django_capture_on_commit_callbacks: Any, rq_queues: str
) -> None:
    use_mailer(settings, "tests.monitoring.test_alerts.RefusingBackend")
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox)
    send_queued_emails()
    alert.refresh_from_db()
    assert alert.emailed_at is None  # the claim was released
    use_mailer(settings, "django.core.mail.backends.locmem.EmailBackend")
    assert alerts.check(alert.created + timedelta(seconds=30))["alert_emails_retried"] == 0  # its own hook's turn
    assert alerts.check(alert.created + timedelta(minutes=2))["alert_emails_retried"] == 1
    assert alerts.check(alert.created + timedelta(minutes=2))["alert_emails_retried"] == 0  # queued already
    send_queued_emails()
    assert alerts.check(alert.created + timedelta(minutes=3))["alert_emails_retried"] == 0
    send_queued_emails()
    assert len(mail.outbox) == 1


def test_with_redis_down_the_email_waits_for_a_later_pass(
    alice_mailbox: Mailbox, admin: Any, settings: Any, django_capture_on_commit_callbacks: Any, rq_queues: str
) -> None:
    redis_conf = settings.RQ_QUEUES
    settings.RQ_QUEUES = {name: {**conf, "URL": "redis://127.0.0.1:1/0"} for name, conf in redis_conf.items()}
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox)  # the engine goes on
    settings.RQ_QUEUES = redis_conf
    assert alerts.check(alert.created + timedelta(minutes=2))["alert_emails_retried"] == 1
    send_queued_emails()
    assert len(mail.outbox) == 1


class RecordingBackend(BaseEmailBackend):
    """A mail server that notes where it was called from."""

    callers: list[list[str]] = []

    def send_messages(self, messages: Any) -> int:
        RecordingBackend.callers.append([frame.function for frame in inspect.stack()])
        return len(messages)


def test_the_scheduler_queues_alert_emails_and_a_worker_sends_them(
    org: Any,
    profile: Any,
    admin: Any,
    now: datetime,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
    rq_queues: str,
) -> None:
    """A mail server that does not answer must not hold up the scheduler's pass: tick() sends nothing."""
    use_mailer(settings, "tests.monitoring.test_alerts.RecordingBackend")
    RecordingBackend.callers = []
    for n in range(3):
        in_each_state(org, profile, now, suffix=str(n))
    with django_capture_on_commit_callbacks(execute=True):
        assert tick(now)["alerts_raised"] == 3
    assert RecordingBackend.callers == []
    assert django_rq.get_queue("default").count == 3
    send_queued_emails()
    assert len(RecordingBackend.callers) == 3
    assert all("tick" not in caller and "perform_job" in caller for caller in RecordingBackend.callers)
    with django_capture_on_commit_callbacks(execute=True):
        tick(now + timedelta(minutes=2))
    send_queued_emails()
    assert len(RecordingBackend.callers) == 3  # once each


def test_the_email_links_to_the_portal_when_its_address_is_set(
    alice_mailbox: Mailbox, admin: Any, settings: Any
) -> None:
    settings.PORTAL_URL = "https://crm-sync.example.com/"
    alert = Alert.objects.create(organization=alice_mailbox.organization, kind="mailbox_stalled", mailbox=alice_mailbox)
    alert.data = {"minutes": 17}
    alert.save()
    assert send_email(alert.pk)
    body = mail.outbox[0].body
    assert f"https://crm-sync.example.com/mailboxes/{alice_mailbox.pk}/" in body
    assert "https://crm-sync.example.com/monitoring/" in body
    assert "had not synced successfully for 17 minutes" in body


# The engine raises


@pytest.mark.django_db(transaction=True)
def test_a_permanent_error_raises_a_channel_disabled_alert_emailed_once(
    mailbox: Mailbox, admin: Any, org: Any, sim: Any, rq_queues: str
) -> None:
    from tests.syncjobs.conftest import sync

    mailbox.profile.password = "wrong"
    mailbox.profile.save()
    run = sync(mailbox)
    assert run.status == RunStatus.FAILED
    alert = Alert.objects.get()
    assert (alert.kind, alert.mailbox, alert.channel) == (AlertKind.CHANNEL_DISABLED, mailbox, "act")
    assert "401" in alert.detail and "wrong" not in alert.detail
    send_queued_emails()
    [message] = mail.outbox
    assert message.to == ["admin@example.com", "alice@example.com"]


@pytest.mark.django_db(transaction=True)
def test_a_mass_delete_refused_raises_one_alert_however_many_runs_refuse(
    mailbox: Mailbox, admin: Any, org: Any, alice: Any, sim: Any, rq_queues: str
) -> None:
    from crm.models import Contact
    from tests.syncjobs.conftest import sync

    Contact.objects.bulk_create(
        Contact(organization=org, owner=alice, first_name="P", last_name=f"Person {i}") for i in range(25)
    )
    assert sync(mailbox).status == RunStatus.SUCCEEDED
    for contact in Contact.objects.all():
        contact.delete()
    for _ in range(2):
        run = sync(mailbox)
        assert run.error_kind == "guard", run.error
    alert = Alert.objects.get()
    assert (alert.kind, alert.mailbox) == (AlertKind.MASS_DELETE_REFUSED, mailbox)
    assert "would delete 25 of the 25 items" in alert.detail
    send_queued_emails()
    assert len(mail.outbox) == 1


# The scheduler's pass raises and resolves


def test_a_stalled_mailbox_is_alerted_once_and_resolved_when_it_syncs(
    org: Any, profile: Any, admin: Any, now: datetime, django_capture_on_commit_callbacks: Any, rq_queues: str
) -> None:
    stalled = in_each_state(org, profile, now)["stalled"]
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.check(now)["alerts_raised"] == 1
        assert alerts.check(now + timedelta(minutes=1))["alerts_raised"] == 0
    send_queued_emails()
    alert = Alert.objects.get()
    assert (alert.kind, alert.mailbox, alert.data) == (AlertKind.MAILBOX_STALLED, stalled, {"minutes": 16})
    assert len(mail.outbox) == 1
    synced = alert.created + timedelta(minutes=1)
    Mailbox.objects.filter(pk=stalled.pk).update(last_success_at=synced, next_sync_at=synced + timedelta(minutes=5))
    assert alerts.check(synced)["alerts_resolved"] == 1
    alert.refresh_from_db()
    assert (alert.status, alert.resolved_at) == (AlertStatus.RESOLVED, synced)


def test_a_mailbox_whose_runs_keep_dying_is_alerted_and_emailed_once(
    org: Any, profile: Any, admin: Any, now: datetime, django_capture_on_commit_callbacks: Any, rq_queues: str
) -> None:
    """Stalled, a run starts (not stalled while it beats), its worker is lost, stalled again: one alert."""
    stalled = in_each_state(org, profile, now)["stalled"]
    at = now
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            alerts.check(at)
            SyncRun.objects.create(
                mailbox=stalled, status=RunStatus.RUNNING, queued_at=at, started_at=at, heartbeat_at=at
            )
            alerts.check(at + timedelta(seconds=30))
            at += timedelta(minutes=3)
            assert recover_stale(at)  # the worker died: nothing succeeded
    send_queued_emails()
    assert Alert.objects.count() == 1 and Alert.objects.get().status == AlertStatus.OPEN
    assert len(mail.outbox) == 1
    Mailbox.objects.filter(pk=stalled.pk).update(last_success_at=at, consecutive_failures=0)
    assert alerts.check(at)["alerts_resolved"] == 1


def test_a_stalled_alert_resolves_when_no_channel_is_enabled_any_more(org: Any, profile: Any, now: datetime) -> None:
    stalled = in_each_state(org, profile, now)["stalled"]
    alerts.check(now)
    Mailbox.objects.filter(pk=stalled.pk).update(enabled_act=False)
    assert alerts.check(now)["alerts_resolved"] == 1


def test_the_scheduler_tick_runs_the_monitoring_pass(org: Any, profile: Any, now: datetime) -> None:
    in_each_state(org, profile, now)
    done = tick(now)
    assert done["alerts_raised"] == 1
    assert Alert.objects.get().kind == AlertKind.MAILBOX_STALLED


def test_a_flagged_profile_is_alerted_and_resolved_when_the_failures_age(
    org: Any, profile: Any, admin: Any, now: datetime
) -> None:
    boxes = [queue_mailbox(org, profile, f"m{i}", **enabled(now)) for i in range(3)]
    for mailbox in boxes[:2]:
        finished_run(mailbox, now - timedelta(minutes=10), RunStatus.FAILED)
    alerts.check(now)
    alert = Alert.objects.get(kind=AlertKind.PROFILE_FLAGGED)
    assert (alert.profile, alert.data) == (profile, {"failing": 2, "total": 3})
    assert alert.title == "2 of the 3 mailboxes of server profile “Exchange” failed within the hour."
    alerts.check(now + timedelta(minutes=30))
    assert Alert.objects.filter(kind=AlertKind.PROFILE_FLAGGED).count() == 1
    alerts.check(now + timedelta(minutes=55))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_a_profile_hovering_around_half_failing_is_alerted_once(
    org: Any, profile: Any, admin: Any, now: datetime
) -> None:
    """Raised over half, resolved at a quarter or less: 75 %, 50 %, 75 % is one alert."""
    m0, m1, m2, m3 = (queue_mailbox(org, profile, f"m{i}", **enabled(now)) for i in range(4))
    for mailbox, minutes in ((m0, -50), (m1, -40), (m2, -5), (m3, 20), (m0, 22)):
        finished_run(mailbox, now + timedelta(minutes=minutes), RunStatus.FAILED)

    def flagged() -> list[tuple[str, dict[str, int]]]:
        return [(a.status, a.data) for a in Alert.objects.filter(kind=AlertKind.PROFILE_FLAGGED).order_by("created")]

    alerts.check(now)  # m0, m1, m2 failed within the hour: 3 of 4
    assert flagged() == [(AlertStatus.OPEN, {"failing": 3, "total": 4})]
    alerts.check(now + timedelta(minutes=15))  # m1, m2: 2 of 4, still over a quarter
    alerts.check(now + timedelta(minutes=25))  # m2, m3, m0: 3 of 4 again
    alerts.check(now + timedelta(minutes=60))  # m3, m0: 2 of 4
    assert flagged() == [(AlertStatus.OPEN, {"failing": 3, "total": 4})]
    alerts.check(now + timedelta(minutes=81))  # m0: 1 of 4
    assert flagged() == [(AlertStatus.RESOLVED, {"failing": 3, "total": 4})]


def test_a_disabled_channel_alert_is_resolved_once_the_channel_is_enabled_again(alice_mailbox: Mailbox) -> None:
    alert = raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=alice_mailbox, channel="act")
    alerts.check()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(enabled_act=True, test_act="success")
    alerts.check()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_a_refused_mass_delete_is_resolved_by_a_later_success(alice_mailbox: Mailbox, now: datetime) -> None:
    alert = raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox)
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(last_success_at=alert.created - timedelta(minutes=1))
    alerts.check()
    assert Alert.objects.get().status == AlertStatus.OPEN
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(last_success_at=alert.created + timedelta(minutes=1))
    alerts.check()
    assert Alert.objects.get().status == AlertStatus.RESOLVED


# Shown and acknowledged


def test_the_monitoring_and_mailbox_pages_show_open_alerts_with_acknowledge(
    alice_mailbox: Mailbox, admin: Any, other_mailbox: Mailbox
) -> None:
    raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=alice_mailbox, channel="act", detail="HTTP 401 Unauthorized")
    theirs = raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=other_mailbox)
    client = client_for(admin)
    for path in ("/monitoring/", f"/mailboxes/{alice_mailbox.pk}/"):
        html = client.get(path).content.decode()
        assert "HTTP 401 Unauthorized" in html
        assert "was disabled after a permanent error" in html
        assert "/acknowledge/" in html and ">Acknowledge<" in html
        assert str(theirs.pk) not in html


def test_acknowledge_marks_the_alert_and_is_audited_on_its_mailbox(alice_mailbox: Mailbox, admin: Any) -> None:
    alert = raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=alice_mailbox, channel="act")
    client = client_for(admin)
    url = f"/monitoring/alerts/{alert.pk}/acknowledge/"
    response = client.post(url, {"next": f"/mailboxes/{alice_mailbox.pk}/"})
    assert response.url == f"/mailboxes/{alice_mailbox.pk}/"
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == (AlertStatus.ACKNOWLEDGED, admin)
    event = AuditEvent.objects.get(action="alert.acknowledged")
    assert (event.actor, event.object_id, event.organization_id) == (
        admin,
        str(alice_mailbox.pk),
        alert.organization_id,
    )
    assert event.changes["status"] == ["Open", "Acknowledged"]
    # Once is enough: a second press changes and records nothing.
    response = client.post(url, {"next": "https://evil.example/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/monitoring/"
    assert "acknowledged or resolved already" in response.content.decode()
    assert AuditEvent.objects.filter(action="alert.acknowledged").count() == 1
    html = client.get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    assert "Acknowledged by Admin" in html and ">Acknowledge<" not in html


def test_acknowledge_is_refused_to_others(
    alice_mailbox: Mailbox, approver: Any, alice: Any, outsider: Any, admin: Any
) -> None:
    alert = raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=alice_mailbox)
    url = f"/monitoring/alerts/{alert.pk}/acknowledge/"
    assert client_for(approver).post(url).status_code == 403
    assert client_for(alice).post(url).status_code == 403
    assert client_for(outsider).post(url).status_code == 404
    assert client_for(admin).get(url).status_code == 405
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(admin)
    assert csrf.post(url).status_code == 403
    assert Alert.objects.get().status == AlertStatus.OPEN
    assert not AuditEvent.objects.filter(action="alert.acknowledged").exists()
