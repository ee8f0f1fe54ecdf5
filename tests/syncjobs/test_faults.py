"""Faults injected in the EWS simulator: each ends as SYNC.md says, and loses or duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from crm.models import Appointment, Contact
from mailboxes.models import Mailbox
from syncjobs import engine
from syncjobs.backends.base import Result
from syncjobs.backends.ews import EwsBackend
from syncjobs.models import ErrorKind, FolderState, ItemLink, LinkState, RunStatus, SyncRun, Trigger
from syncjobs.scheduler import tick
from tests.syncjobs.conftest import ALICE, items, mailbox_values, sync

pytestmark = pytest.mark.django_db(transaction=True)


def contacts(org: Any, owner: Any, n: int) -> list[Contact]:
    return Contact.objects.bulk_create(
        Contact(organization=org, owner=owner, first_name=f"P{i}", last_name=f"Person {i}") for i in range(n)
    )


def stamps(sim: Any, folder: str = "contacts") -> list[str]:
    return [p["value"] for i in items(sim, folder) for p in i["extended_properties"]]


def test_server_busy_is_retried_after_the_back_off_and_then_finishes(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    contacts(org, alice, 3)
    sim.control.add_fault("SyncFolderItems", error="ErrorServerBusy", back_off_ms=90_000)
    run = sync(mailbox)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.TRANSIENT)
    assert "busy" in run.error
    mailbox.refresh_from_db()
    assert mailbox.consecutive_failures == 1
    assert mailbox.next_sync_at >= run.finished_at + timedelta(seconds=90)
    assert tick(now=mailbox.next_sync_at - timedelta(seconds=1))["queued"] == 0
    assert tick(now=mailbox.next_sync_at)["queued"] == 1
    retry = engine.run_sync(SyncRun.objects.get(status=RunStatus.QUEUED).pk)
    assert retry.status == RunStatus.SUCCEEDED, retry.error
    assert len(items(sim, "contacts")) == 3
    mailbox.refresh_from_db()
    assert mailbox.consecutive_failures == 0 and mailbox.last_success_at == retry.finished_at


def test_http_503_is_transient(mailbox: Any, sim: Any) -> None:
    sim.control.add_fault("*", http_status=503)
    run = sync(mailbox)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.TRANSIENT)


def test_after_ten_transient_failures_the_channel_is_disabled(mailbox: Any, sim: Any) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(consecutive_failures=9)
    sim.control.add_fault("*", http_status=500)
    run = sync(mailbox)
    assert run.status == RunStatus.FAILED
    mailbox.refresh_from_db()
    assert not mailbox.enabled_act and mailbox.disabled_reason


def test_a_wrong_password_disables_the_channel_with_the_reason(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    contacts(org, alice, 2)
    mailbox.profile.password = "wrong"
    mailbox.profile.save()
    run = sync(mailbox)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.PERMANENT)
    assert "401" in run.error
    mailbox.refresh_from_db()
    assert not mailbox.enabled_act and not mailbox.can_sync("act")
    assert "401" in mailbox.disabled_reason
    assert AuditEvent.objects.filter(action="mailbox.channel_disabled", object_id=str(mailbox.pk)).exists()
    assert tick()["queued"] == 0  # not scheduled until Test & Enable passes again
    assert "wrong" not in str(list(AuditEvent.objects.values_list("changes", flat=True)))


def test_impersonation_refused_is_permanent(mailbox: Any, sim: Any) -> None:
    sim.control.delete_mailbox("svc@example.com")
    sim.control.create_mailbox("svc@example.com", "svc-pw", can_impersonate=False)
    run = sync(mailbox)
    assert run.error_kind == ErrorKind.PERMANENT
    assert "ErrorImpersonateUserDenied" in run.error


def test_an_unknown_mailbox_is_permanent(mailbox: Any, sim: Any) -> None:
    sim.control.delete_mailbox(ALICE)
    run = sync(mailbox)
    assert run.error_kind == ErrorKind.PERMANENT


def test_one_bad_item_is_quarantined_while_the_rest_sync(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    good = contacts(org, alice, 3)
    start = timezone.now() + timedelta(days=1)
    bad = Appointment.objects.create(
        organization=org, owner=alice, subject="Bad", start=start, end=start - timedelta(hours=1)
    )
    run = sync(mailbox)
    assert run.status == RunStatus.PARTIAL
    assert run.counts["failed"] == 1 and run.counts["to_exchange"] == {"created": 3}
    assert sorted(stamps(sim)) == sorted(str(c.pk) for c in good)
    for _ in range(2):
        run = sync(mailbox)
    link = ItemLink.objects.get(crm_id=bad.pk)
    assert link.state == LinkState.QUARANTINED and link.error_count == 3
    assert "end" in link.last_error.lower()
    assert run.counts.get("quarantined") == 1
    run = sync(mailbox)
    assert run.status == RunStatus.SUCCEEDED  # quarantined items are skipped until released
    assert items(sim, "calendar") == []
    bad.end = bad.start + timedelta(hours=1)
    bad.save()
    ItemLink.objects.filter(pk=link.pk).update(state=LinkState.ERROR, error_count=0)  # what "release" does
    assert sync(mailbox).counts["to_exchange"] == {"created": 1}
    assert ItemLink.objects.get(crm_id=bad.pk).state == LinkState.OK


def test_an_invalid_sync_state_rebuilds_the_folder_and_creates_nothing_twice(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    contacts(org, alice, 5)
    sync(mailbox)
    FolderState.objects.filter(mailbox=mailbox, folder="contacts").update(sync_state="not-a-valid-state")
    run = sync(mailbox)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["to_exchange"] == {}
    assert len(items(sim, "contacts")) == 5
    assert FolderState.objects.get(mailbox=mailbox, folder="contacts").phase == "poll"


class ConcurrentEdit(EwsBackend):
    """The user edits an item between the run's read and its write: the change key goes stale."""

    def __init__(self, mailbox: Any, sim: Any, changes: dict) -> None:
        super().__init__(mailbox)
        self.sim, self.changes = sim, changes

    def update_items(self, folder: str, updates: list) -> list:
        if self.changes:
            self.sim.control.update_item(updates[0][0], self.changes)
            self.changes = {}
        return super().update_items(folder, updates)


def test_a_stale_change_key_is_read_again_and_both_edits_survive(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    [c] = contacts(org, alice, 1)
    sync(mailbox)
    c.job_title = "Edited in the CRM"
    c.save()
    run = SyncRun.objects.create(mailbox=mailbox, trigger=Trigger.MANUAL)
    done = engine.run_sync(run.pk, backend=ConcurrentEdit(mailbox, sim, {"surname": "Edited in the mailbox"}))
    assert done.status == RunStatus.SUCCEEDED, done.error
    sync(mailbox)  # the mailbox edit that raced the write arrives
    c.refresh_from_db()
    [values] = mailbox_values(mailbox, "contacts")
    assert c.job_title == values["job_title"] == "Edited in the CRM"
    assert c.last_name == values["last_name"] == "Edited in the mailbox"


def test_a_run_without_heartbeat_is_marked_lost_and_run_again(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    contacts(org, alice, 2)
    old = timezone.now() - timedelta(minutes=5)
    stuck = SyncRun.objects.create(mailbox=mailbox, status=RunStatus.RUNNING, started_at=old, heartbeat_at=old)
    assert tick()["lost"] == 1
    stuck.refresh_from_db()
    assert (stuck.status, stuck.error_kind) == (RunStatus.FAILED, ErrorKind.LOST)
    fresh = SyncRun.objects.get(status=RunStatus.QUEUED)
    assert fresh.trigger == Trigger.RETRY
    assert engine.run_sync(fresh.pk).status == RunStatus.SUCCEEDED
    assert len(items(sim, "contacts")) == 2


def test_runs_of_one_mailbox_never_overlap(mailbox: Any, sim: Any) -> None:
    now = timezone.now()
    SyncRun.objects.create(mailbox=mailbox, status=RunStatus.RUNNING, started_at=now, heartbeat_at=now)
    queued = SyncRun.objects.create(mailbox=mailbox)
    assert engine.run_sync(queued.pk) is None
    queued.refresh_from_db()
    assert queued.status == RunStatus.QUEUED


def database_url() -> str:
    """The test database, for a worker in another process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.mark.slow
def test_a_worker_killed_while_creating_500_items_leaves_each_item_once(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    records = contacts(org, alice, 500)
    sim.control.add_fault("CreateItem", delay_ms=400, count=10)  # every batch is slow: a window to kill in
    worker = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "sync_mailbox", ALICE],
        env={**os.environ, "DATABASE_URL": database_url()},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(items(sim, "contacts")) < 100:  # wait until the first batch is in Exchange
            assert time.monotonic() < deadline, "the worker created nothing"
            assert worker.poll() is None, "the worker ended before it was killed"
            time.sleep(0.02)  # poll interval of the condition above
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    created = len(items(sim, "contacts"))
    assert 100 <= created < 500, "the kill must land while Exchange is still accepting creates"
    [run] = SyncRun.objects.all()
    assert run.status == RunStatus.RUNNING  # nothing was committed
    assert not ItemLink.objects.exists()
    sim.control.clear_faults()
    assert tick(now=timezone.now() + timedelta(minutes=3))["lost"] == 1
    retry = SyncRun.objects.get(status=RunStatus.QUEUED)
    done = engine.run_sync(retry.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert sorted(stamps(sim)) == sorted(str(c.pk) for c in records)
    assert ItemLink.objects.filter(state=LinkState.OK).count() == 500
    assert Contact.objects.count() == 500
    assert sync(mailbox).counts["to_exchange"] == {}


def test_the_profiles_connection_limit_holds_across_workers(
    rq_queues: str, mailbox: Any, org: Any, bob: Any, sim: Any
) -> None:
    import django_rq

    from tests.conftest import make_mailbox

    mailbox.profile.max_concurrent_connections = 1
    mailbox.profile.save()
    other = make_mailbox(org, bob, "bob@example.com", mailbox.profile)
    now = timezone.now()
    SyncRun.objects.create(mailbox=other, status=RunStatus.RUNNING, started_at=now, heartbeat_at=now)
    queued = SyncRun.objects.create(mailbox=mailbox)
    assert engine.run_sync(queued.pk) is None
    queued.refresh_from_db()
    assert queued.status == RunStatus.QUEUED
    scheduled = django_rq.get_queue("sync").scheduled_job_registry.get_job_ids()
    assert scheduled == [f"sync_job-{queued.pk}"]  # delivered again a little later


class NoIdOnCreate(EwsBackend):
    """Exchange may answer a create without the new item's id."""

    def create_items(self, folder: str, items: list) -> list:
        return [Result(change_key=r.change_key, error=r.error) for r in super().create_items(folder, items)]


def test_a_create_answered_without_an_id_is_found_by_its_stamp(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    [c] = contacts(org, alice, 1)
    run = SyncRun.objects.create(mailbox=mailbox, trigger=Trigger.MANUAL)
    assert engine.run_sync(run.pk, backend=NoIdOnCreate(mailbox)).status == RunStatus.SUCCEEDED
    assert ItemLink.objects.get(crm_id=c.pk).exchange_id == ""
    sync(mailbox)
    [item] = items(sim, "contacts")
    assert ItemLink.objects.get(crm_id=c.pk).exchange_id == item["id"]
    sim.control.clear_requests()
    assert sync(mailbox).counts["to_exchange"] == {}
    assert [r["operation"] for r in sim.control.requests()] == ["SyncFolderItems"] * 3


def test_a_password_the_keys_cannot_decrypt_disables_the_channel_with_what_to_do(
    mailbox: Any, sim: Any, settings: Any
) -> None:
    from cryptography.fernet import Fernet

    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key that encrypted the password is gone
    run = sync(mailbox)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.PERMANENT)
    assert "cannot be decrypted" in run.error and "Enter the password again" in run.error
    mailbox.refresh_from_db()
    assert not mailbox.enabled_act


def test_the_mailbox_page_works_when_its_own_password_cannot_be_decrypted(
    org: Any, alice: Any, admin: Any, settings: Any
) -> None:
    from cryptography.fernet import Fernet

    from tests.conftest import client_for, make_mailbox, make_profile

    profile = make_profile(org, "Own credentials", credentials_source="mailbox", username="")
    box = make_mailbox(org, alice, "alice@example.com", profile, username="alice", password="alice-pw")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = client_for(admin).get(f"/mailboxes/{box.pk}/")
    assert response.status_code == 200
    assert "alice@example.com" in response.content.decode()
