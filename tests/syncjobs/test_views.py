"""Sync pages: Test & Enable, Sync now, confirm deletes, release, apply the other side, status (STYLE.md 10)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from crm.models import Contact
from mailboxes.models import EmailServerProfile, Mailbox, TestStatus
from syncjobs.health import failing_share
from syncjobs.models import (
    Conflict,
    ConflictStatus,
    ErrorKind,
    ItemLink,
    LinkState,
    RunStatus,
    SyncRun,
    TestRun,
    TestRunStatus,
    Trigger,
)
from tests.conftest import client_for, make_conflict, make_mailbox, make_profile
from tests.mailboxes.test_mailboxes import edit_data as mailbox_edit_data
from tests.mailboxes.test_profiles import edit_data as profile_edit_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin: Any) -> Client:
    return client_for(admin)


def ready(mailbox: Mailbox) -> Mailbox:
    """Approved, tested and enabled on every channel."""
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status="approved",
        test_incoming=TestStatus.SUCCESS,
        test_outgoing=TestStatus.SUCCESS,
        test_act=TestStatus.SUCCESS,
        test_overall=TestStatus.SUCCESS,
        tested_at=timezone.now(),
        enabled_incoming=True,
        enabled_outgoing=True,
        enabled_act=True,
    )
    mailbox.refresh_from_db()
    return mailbox


def events(action: str) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(action=action).values_list("actor_name", "object_id"))


def message_texts(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def follow(client: Client, url: str, data: Any = None) -> Any:
    return client.post(url, data or {}, follow=True)


# Test & Enable


def test_test_and_enable_queues_a_test(admin_client: Client, alice_mailbox: Mailbox) -> None:
    response = admin_client.post(f"/mailboxes/{alice_mailbox.pk}/test/")

    assert response.status_code == 302
    assert response.url == f"/mailboxes/{alice_mailbox.pk}/"
    test = TestRun.objects.get(mailbox=alice_mailbox)
    assert (test.status, test.requested_by.username) == (TestRunStatus.QUEUED, "admin")
    assert events("mailbox.test_requested") == [("admin", str(alice_mailbox.pk))]


@pytest.mark.parametrize("url", ["/mailboxes/{pk}/test/", "/mailboxes/{pk}/sync/"])
def test_actions_reject_get(admin_client: Client, alice_mailbox: Mailbox, url: str) -> None:
    assert admin_client.get(url.format(pk=alice_mailbox.pk)).status_code == 405
    assert not TestRun.objects.exists()
    assert not SyncRun.objects.exists()


@pytest.mark.parametrize("url", ["/mailboxes/{pk}/test/", "/mailboxes/{pk}/sync/", "/mailboxes/{pk}/status/"])
def test_another_organizations_mailbox_is_404(admin_client: Client, other_mailbox: Mailbox, url: str) -> None:
    client_method = admin_client.get if url.endswith("status/") else admin_client.post
    assert client_method(url.format(pk=other_mailbox.pk)).status_code == 404
    assert not TestRun.objects.exists()
    assert not SyncRun.objects.exists()


@pytest.mark.parametrize("persona", ["approver", "auditor"])
@pytest.mark.parametrize("url", ["/mailboxes/{pk}/test/", "/mailboxes/{pk}/sync/"])
def test_read_only_roles_are_refused(
    request: pytest.FixtureRequest, alice_mailbox: Mailbox, persona: str, url: str
) -> None:
    client = client_for(request.getfixturevalue(persona))
    assert client.post(url.format(pk=alice_mailbox.pk)).status_code == 403
    assert not TestRun.objects.exists()
    assert not SyncRun.objects.exists()


def test_bulk_test_and_enable_queues_one_test_per_selected_mailbox(
    admin_client: Client, alice_mailbox: Mailbox, org: Any, bob: Any, profile: EmailServerProfile
) -> None:
    bob_mailbox = make_mailbox(org, bob, "bob@example.com", profile)
    make_mailbox(org, None, "sales@example.com", profile, owner_type="queue", queue_name="Sales")

    response = admin_client.post("/mailboxes/test/", {"mailbox": [alice_mailbox.pk, bob_mailbox.pk]}, follow=True)

    assert sorted(TestRun.objects.values_list("mailbox__address", flat=True)) == [
        "alice@example.com",
        "bob@example.com",
    ]
    assert message_texts(response) == ["Test & Enable of 2 mailboxes is queued."]
    assert len(events("mailbox.test_requested")) == 2


def test_bulk_test_with_another_organizations_mailbox_queues_nothing(
    admin_client: Client, alice_mailbox: Mailbox, other_mailbox: Mailbox
) -> None:
    response = admin_client.post("/mailboxes/test/", {"mailbox": [alice_mailbox.pk, other_mailbox.pk]})

    assert response.status_code == 404
    assert not TestRun.objects.exists()


def test_bulk_test_without_selection_says_so(admin_client: Client, alice_mailbox: Mailbox) -> None:
    response = follow(admin_client, "/mailboxes/test/")

    assert message_texts(response) == ["Select at least one mailbox."]
    assert not TestRun.objects.exists()


def test_the_mailbox_list_has_a_checkbox_per_mailbox_and_the_bulk_button(
    admin_client: Client, alice_mailbox: Mailbox
) -> None:
    html = admin_client.get("/mailboxes/").content.decode()

    assert 'action="/mailboxes/test/"' in html
    assert f'name="mailbox" value="{alice_mailbox.pk}"' in html


def test_profile_test_and_enable_queues_every_mailbox_of_the_profile(
    admin_client: Client, alice_mailbox: Mailbox, profile: EmailServerProfile, org: Any, bob: Any
) -> None:
    make_mailbox(org, bob, "bob@example.com", profile)
    make_mailbox(org, None, "other@example.com", make_profile(org, "Other"), owner_type="queue", queue_name="Q")

    response = admin_client.post(f"/profiles/{profile.pk}/test/")

    assert response.url == f"/profiles/{profile.pk}/"
    assert sorted(TestRun.objects.values_list("mailbox__address", flat=True)) == [
        "alice@example.com",
        "bob@example.com",
    ]
    assert len(events("mailbox.test_requested")) == 2


def test_profile_test_of_another_organization_is_404(admin_client: Client, other_mailbox: Mailbox) -> None:
    assert admin_client.post(f"/profiles/{other_mailbox.profile_id}/test/").status_code == 404
    assert not TestRun.objects.exists()


def test_the_profile_page_has_the_test_all_button(admin_client: Client, profile: EmailServerProfile) -> None:
    html = admin_client.get(f"/profiles/{profile.pk}/").content.decode()
    assert f'action="/profiles/{profile.pk}/test/"' in html


# Sync now


def test_sync_now_queues_a_manual_act_run(admin_client: Client, alice_mailbox: Mailbox, admin: Any) -> None:
    ready(alice_mailbox)

    response = follow(admin_client, f"/mailboxes/{alice_mailbox.pk}/sync/")

    run = SyncRun.objects.get(mailbox=alice_mailbox)
    assert (run.channel, run.trigger, run.status, run.requested_by) == ("act", Trigger.MANUAL, "queued", admin)
    assert message_texts(response) == ["A sync of alice@example.com is queued."]
    assert events("mailbox.sync_requested") == [("admin", str(alice_mailbox.pk))]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"test_act": TestStatus.FAILURE}, "Test & Enable has not passed for “Appointments, contacts and tasks”"),
        ({"approval_status": "pending"}, "The email address alice@example.com is not approved (Pending approval)."),
        ({"enabled_act": False, "disabled_reason": "HTTP 401"}, "is disabled: HTTP 401"),
        ({"is_active": False}, "The mailbox is not active."),
        ({"act_method": "none"}, "is None."),
    ],
)
def test_sync_now_is_refused_saying_why(
    admin_client: Client, alice_mailbox: Mailbox, change: dict[str, Any], why: str
) -> None:
    ready(alice_mailbox)
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(**change)

    response = follow(admin_client, f"/mailboxes/{alice_mailbox.pk}/sync/")

    assert not SyncRun.objects.exists()
    [text] = message_texts(response)
    assert text.startswith("alice@example.com cannot sync now.")
    assert why in text
    assert events("mailbox.sync_requested") == []


# Confirm deletes


def guard_run(mailbox: Mailbox, **fields: Any) -> SyncRun:
    values = {
        "status": RunStatus.FAILED,
        "error_kind": ErrorKind.GUARD,
        "error": "The run would delete 40 of 50 linked items.",
        "finished_at": timezone.now(),
        **fields,
    }
    return SyncRun.objects.create(mailbox=mailbox, **values)


def test_confirm_deletes_queues_a_run_that_may_delete(admin_client: Client, alice_mailbox: Mailbox) -> None:
    ready(alice_mailbox)
    stopped = guard_run(alice_mailbox)

    response = admin_client.post(f"/runs/{stopped.pk}/confirm-deletes/")

    assert response.url == f"/mailboxes/{alice_mailbox.pk}/"
    run = SyncRun.objects.get(status=RunStatus.QUEUED)
    assert (run.allow_mass_delete, run.trigger, run.channel) == (True, Trigger.MANUAL, "act")
    assert events("mailbox.deletes_confirmed") == [("admin", str(alice_mailbox.pk))]


def test_confirm_deletes_of_a_run_the_guard_did_not_stop_is_refused(
    admin_client: Client, alice_mailbox: Mailbox
) -> None:
    ready(alice_mailbox)
    failed = guard_run(alice_mailbox, error_kind=ErrorKind.PERMANENT, error="HTTP 401")

    response = follow(admin_client, f"/runs/{failed.pk}/confirm-deletes/")

    assert message_texts(response) == ["The mass-delete guard did not stop this run: there are no deletes to confirm."]
    assert SyncRun.objects.count() == 1


def test_confirm_deletes_of_a_superseded_run_is_refused(admin_client: Client, alice_mailbox: Mailbox) -> None:
    ready(alice_mailbox)
    old = guard_run(alice_mailbox, queued_at=timezone.now() - timedelta(hours=1))
    SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.SUCCEEDED, finished_at=timezone.now())

    response = follow(admin_client, f"/runs/{old.pk}/confirm-deletes/")

    assert "A later run has finished since" in message_texts(response)[0]
    assert not SyncRun.objects.filter(allow_mass_delete=True).exists()


def test_confirm_deletes_get_403_404(
    admin_client: Client, approver: Any, alice_mailbox: Mailbox, other_mailbox: Mailbox
) -> None:
    mine, theirs = guard_run(alice_mailbox), guard_run(other_mailbox)

    assert admin_client.get(f"/runs/{mine.pk}/confirm-deletes/").status_code == 405
    assert admin_client.post(f"/runs/{theirs.pk}/confirm-deletes/").status_code == 404
    assert client_for(approver).post(f"/runs/{mine.pk}/confirm-deletes/").status_code == 403
    assert SyncRun.objects.count() == 2


# Release


@pytest.fixture
def contact(org: Any, alice: Any) -> Contact:
    return Contact.objects.create(organization=org, owner=alice, first_name="Ada", last_name="Lovelace")


def quarantined(mailbox: Mailbox, contact: Contact) -> ItemLink:
    return ItemLink.objects.create(
        mailbox=mailbox,
        record_type="contact",
        crm_id=contact.pk,
        exchange_id=f"item-{contact.pk}",
        state=LinkState.QUARANTINED,
        error_count=3,
        last_error="ErrorInvalidValueForProperty: bad phone number",
        next_retry_at=timezone.now(),
    )


def test_release_lets_a_quarantined_item_sync_again(
    admin_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    link = quarantined(alice_mailbox, contact)

    response = admin_client.post(f"/items/{link.pk}/release/")

    assert response.url == f"/mailboxes/{alice_mailbox.pk}/"
    link.refresh_from_db()
    assert (link.state, link.error_count, link.last_error, link.next_retry_at) == (LinkState.ERROR, 0, "", None)
    event = AuditEvent.objects.get(action="mailbox.item_released")
    assert (event.actor_name, event.object_id) == ("admin", str(alice_mailbox.pk))
    assert event.changes["state"] == ["quarantined", "error"]


def test_release_of_an_item_not_quarantined_changes_nothing(
    admin_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    link = quarantined(alice_mailbox, contact)
    ItemLink.objects.filter(pk=link.pk).update(state=LinkState.ERROR)

    response = follow(admin_client, f"/items/{link.pk}/release/")

    assert message_texts(response) == ["This item is not quarantined."]
    link.refresh_from_db()
    assert (link.state, link.error_count) == (LinkState.ERROR, 3)
    assert events("mailbox.item_released") == []


def test_release_get_403_404(
    admin_client: Client, auditor: Any, alice_mailbox: Mailbox, other_mailbox: Mailbox, contact: Contact
) -> None:
    mine, theirs = quarantined(alice_mailbox, contact), quarantined(other_mailbox, contact)

    assert admin_client.get(f"/items/{mine.pk}/release/").status_code == 405
    assert admin_client.post(f"/items/{theirs.pk}/release/").status_code == 404
    assert client_for(auditor).post(f"/items/{mine.pk}/release/").status_code == 403
    assert set(ItemLink.objects.values_list("state", flat=True)) == {LinkState.QUARANTINED}


# Apply the other side


def test_apply_the_other_side_writes_it_into_the_crm_record(
    admin_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    # The engine applied the mailbox's values; the admin prefers the CRM's.
    Contact.objects.filter(pk=contact.pk).update(job_title="Countess", mobile_phone="+1 555 0199")
    conflict = make_conflict(alice_mailbox, contact, applied="exchange")
    version = Contact.objects.get(pk=contact.pk).version

    response = admin_client.post(f"/conflicts/{conflict.pk}/apply-other-side/")

    assert response.url == f"/mailboxes/{alice_mailbox.pk}/"
    contact.refresh_from_db()
    assert (contact.job_title, contact.mobile_phone) == ("Analyst", "+1 555 0101")
    assert contact.version == version + 1  # a change the next sync carries to the mailbox
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.CLOSED
    assert conflict.resolved_by == "Admin"
    assert conflict.closed_at is not None
    assert conflict.resolution == {"job_title": "crm", "mobile_phone": "crm"}
    event = AuditEvent.objects.get(action="mailbox.conflict_resolved")
    assert event.actor_name == "admin"
    assert event.changes["job_title"] == ["Countess", "Analyst"]


def test_apply_the_other_side_of_a_crm_win_takes_the_mailboxs_values(
    admin_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    conflict = make_conflict(alice_mailbox, contact, applied="crm")

    admin_client.post(f"/conflicts/{conflict.pk}/apply-other-side/")

    contact.refresh_from_db()
    assert (contact.job_title, contact.mobile_phone) == ("Countess", "+1 555 0199")


def test_apply_the_other_side_of_a_closed_conflict_changes_nothing(
    admin_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    conflict = make_conflict(alice_mailbox, contact)
    Conflict.objects.filter(pk=conflict.pk).update(status=ConflictStatus.CLOSED)

    response = follow(admin_client, f"/conflicts/{conflict.pk}/apply-other-side/")

    assert message_texts(response) == ["This conflict is closed already, or its record is gone."]
    contact.refresh_from_db()
    assert contact.job_title == ""
    assert events("mailbox.conflict_resolved") == []


def test_apply_the_other_side_get_403_404(
    admin_client: Client, approver: Any, alice_mailbox: Mailbox, other_mailbox: Mailbox, contact: Contact
) -> None:
    mine, theirs = make_conflict(alice_mailbox, contact), make_conflict(other_mailbox, contact)

    assert admin_client.get(f"/conflicts/{mine.pk}/apply-other-side/").status_code == 405
    assert admin_client.post(f"/conflicts/{theirs.pk}/apply-other-side/").status_code == 404
    assert client_for(approver).post(f"/conflicts/{mine.pk}/apply-other-side/").status_code == 403
    assert set(Conflict.objects.values_list("status", flat=True)) == {ConflictStatus.OPEN}


# The mailbox page and its status fragment


def test_the_mailbox_page_shows_tests_runs_quarantine_and_conflicts(
    admin_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    ready(alice_mailbox)
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(last_error="HTTP 401 yesterday")
    TestRun.objects.create(
        mailbox=alice_mailbox,
        status=TestRunStatus.DONE,
        finished_at=timezone.now(),
        results={"act": {"status": "success", "message": "Passed."}},
    )
    started = timezone.now() - timedelta(seconds=90)
    SyncRun.objects.create(
        mailbox=alice_mailbox,
        status=RunStatus.SUCCEEDED,
        started_at=started,
        finished_at=started + timedelta(seconds=12),
        counts={"to_exchange": {"created": 7, "updated": 2, "deleted": 1}, "to_crm": {"created": 3, "updated": 4}},
    )
    stopped = guard_run(alice_mailbox, channel="incoming")
    link = quarantined(alice_mailbox, contact)
    conflict = make_conflict(alice_mailbox, contact)

    html = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()

    assert f'action="/mailboxes/{alice_mailbox.pk}/test/"' in html
    assert f'action="/mailboxes/{alice_mailbox.pk}/sync/"' in html
    assert "HTTP 401 yesterday" in html
    assert "Passed." in html
    assert "7 / 2 / 1" in html and "3 / 4" in html
    assert "12.0 s" in html
    assert f'action="/runs/{stopped.pk}/confirm-deletes/"' in html
    assert f'action="/items/{link.pk}/release/"' in html
    assert "bad phone number" in html
    assert f'action="/conflicts/{conflict.pk}/apply-other-side/"' in html
    row = html.split(f'id="conflict-{conflict.pk}"', 1)[1].split("</table>", 1)[0]
    assert "Ada Lovelace" in html.split(f'id="conflict-{conflict.pk}"', 1)[1]
    for value in ("Engineer", "Analyst", "Countess"):
        assert value in row
    assert 'hx-trigger="every 2s"' not in html  # nothing is running


def test_the_mailbox_page_gathers_its_context_in_a_bounded_number_of_queries(
    admin_client: Client, alice_mailbox: Mailbox, contact: Contact, org: Any, alice: Any, django_assert_max_num_queries
) -> None:
    url = f"/mailboxes/{alice_mailbox.pk}/"
    admin_client.get(url)  # warm the session and the memberships

    with django_assert_max_num_queries(20) as few:
        admin_client.get(url)
    for n in range(12):
        other = Contact.objects.create(organization=org, owner=alice, last_name=f"C{n}")
        quarantined(alice_mailbox, other)
        make_conflict(alice_mailbox, other)
        SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.FAILED, finished_at=timezone.now())
        TestRun.objects.create(mailbox=alice_mailbox, status=TestRunStatus.DONE)

    with django_assert_max_num_queries(len(few.captured_queries) + 1):
        response = admin_client.get(url)
    assert len(response.context["runs"]) == 10
    assert len(response.context["quarantined"]) == 12
    assert len(response.context["conflicts"]) == 12


@pytest.mark.parametrize("active", ["test", "sync"])
def test_the_status_fragment_polls_while_something_is_queued_or_running(
    admin_client: Client, alice_mailbox: Mailbox, active: str
) -> None:
    if active == "test":
        test = TestRun.objects.create(mailbox=alice_mailbox, status=TestRunStatus.RUNNING)
    else:
        run = SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.QUEUED)
    url = f"/mailboxes/{alice_mailbox.pk}/status/"

    page = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    fragment = admin_client.get(url).content.decode()

    poll = f'hx-get="{url}" hx-trigger="every 2s" hx-swap="outerHTML"'
    assert poll in page
    assert poll in fragment
    assert "<html" not in fragment

    # Once it is done, the fragment renders without the trigger: polling stops.
    if active == "test":
        TestRun.objects.filter(pk=test.pk).update(
            status=TestRunStatus.DONE, results={"act": {"status": "failure", "message": "HTTP 401: no entry"}}
        )
    else:
        SyncRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    fragment = admin_client.get(url).content.decode()
    assert "hx-trigger" not in fragment
    assert 'id="sync-status"' in fragment
    if active == "test":
        assert "HTTP 401: no entry" in fragment


def test_the_status_fragment_stops_polling_for_a_test_lost_with_its_worker(
    admin_client: Client, alice_mailbox: Mailbox
) -> None:
    TestRun.objects.create(
        mailbox=alice_mailbox, status=TestRunStatus.RUNNING, queued_at=timezone.now() - timedelta(minutes=16)
    )

    fragment = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/status/").content.decode()

    assert "hx-trigger" not in fragment


def test_the_status_fragment_refuses_read_only_roles_and_hides_other_organizations(
    admin_client: Client, approver: Any, alice_mailbox: Mailbox, other_mailbox: Mailbox
) -> None:
    assert client_for(approver).get(f"/mailboxes/{alice_mailbox.pk}/status/").status_code == 403
    assert admin_client.get(f"/mailboxes/{other_mailbox.pk}/status/").status_code == 404


def test_the_page_loads_htmx_from_the_vendored_copy(admin_client: Client, alice_mailbox: Mailbox) -> None:
    html = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    assert '<script src="/static/vendor/htmx/htmx.min.js"></script>' in html


# Changing the address, the profile or the credentials sets the tests back to Not run


@pytest.mark.parametrize(
    "change",
    [
        {"address": "alice.new@example.com"},
        {"username": "alice-login"},
        {"password": "new-secret"},
        {"profile": "other"},
    ],
)
def test_a_connection_change_on_the_mailbox_resets_its_tests(
    admin_client: Client, alice_mailbox: Mailbox, org: Any, change: dict[str, Any]
) -> None:
    ready(alice_mailbox)
    if change.get("profile") == "other":
        change = {"profile": make_profile(org, "Other").pk}

    response = admin_client.post(f"/mailboxes/{alice_mailbox.pk}/edit/", mailbox_edit_data(alice_mailbox, **change))

    assert response.status_code == 302
    alice_mailbox.refresh_from_db()
    assert (alice_mailbox.test_incoming, alice_mailbox.test_outgoing, alice_mailbox.test_act) == ("not_run",) * 3
    assert (alice_mailbox.test_overall, alice_mailbox.tested_at) == ("not_run", None)
    assert (alice_mailbox.enabled_incoming, alice_mailbox.enabled_outgoing, alice_mailbox.enabled_act) == (
        False,
        False,
        False,
    )
    event = AuditEvent.objects.get(action="mailbox.updated")
    assert event.changes["enabled_act"] == [True, False]


def test_another_change_on_the_mailbox_keeps_its_tests(admin_client: Client, alice_mailbox: Mailbox) -> None:
    ready(alice_mailbox)

    admin_client.post(f"/mailboxes/{alice_mailbox.pk}/edit/", mailbox_edit_data(alice_mailbox, tracking_rule="all"))

    alice_mailbox.refresh_from_db()
    assert alice_mailbox.tracking_rule == "all"
    assert (alice_mailbox.test_overall, alice_mailbox.enabled_act) == ("success", True)


@pytest.mark.parametrize(
    "change",
    [
        {"password": "rotated-Secret-2"},
        {"username": "svc2@example.com"},
        # A new server needs the password typed again (issue 7, security item 4).
        {"ews_url": "https://mail2.example.com/EWS/Exchange.asmx", "password": "rotated-Secret-2"},
        {"auth_type": "ntlm"},
    ],
)
def test_a_connection_change_on_the_profile_resets_its_mailboxes_tests(
    admin_client: Client, alice_mailbox: Mailbox, profile: EmailServerProfile, other_mailbox: Mailbox, change: Any
) -> None:
    ready(alice_mailbox)
    ready(other_mailbox)

    response = admin_client.post(f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, **change))

    assert response.status_code == 302
    alice_mailbox.refresh_from_db()
    assert (alice_mailbox.test_overall, alice_mailbox.test_act, alice_mailbox.enabled_act) == (
        "not_run",
        "not_run",
        False,
    )
    other_mailbox.refresh_from_db()
    assert other_mailbox.test_overall == "success"  # another profile's mailbox
    event = AuditEvent.objects.get(action="mailbox.tests_reset")
    assert (event.actor_name, event.object_id) == ("admin", str(alice_mailbox.pk))
    assert "rotated-Secret-2" not in str(AuditEvent.objects.values_list("changes", flat=True))


def test_another_change_on_the_profile_keeps_its_mailboxes_tests(
    admin_client: Client, alice_mailbox: Mailbox, profile: EmailServerProfile
) -> None:
    ready(alice_mailbox)

    admin_client.post(f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, name="Renamed", timeout_seconds=60))

    profile.refresh_from_db()
    assert profile.name == "Renamed"
    alice_mailbox.refresh_from_db()
    assert (alice_mailbox.test_overall, alice_mailbox.enabled_act) == ("success", True)
    assert events("mailbox.tests_reset") == []


# The profile's failing share


def test_the_profile_page_flags_when_over_half_its_mailboxes_failed_within_the_hour(
    admin_client: Client, org: Any, bob: Any, alice_mailbox: Mailbox, profile: EmailServerProfile
) -> None:
    bob_mailbox = make_mailbox(org, bob, "bob@example.com", profile)
    make_mailbox(org, None, "sales@example.com", profile, owner_type="queue", queue_name="Sales")
    now = timezone.now()
    SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.FAILED, finished_at=now - timedelta(minutes=5))
    SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.FAILED, finished_at=now - timedelta(minutes=9))
    SyncRun.objects.create(mailbox=bob_mailbox, status=RunStatus.FAILED, finished_at=now - timedelta(minutes=70))

    assert failing_share(profile, now) == pytest.approx(1 / 3)
    assert 'id="failing-share"' not in admin_client.get(f"/profiles/{profile.pk}/").content.decode()

    SyncRun.objects.create(mailbox=bob_mailbox, status=RunStatus.FAILED, finished_at=now - timedelta(minutes=30))

    assert failing_share(profile, now) == pytest.approx(2 / 3)
    html = admin_client.get(f"/profiles/{profile.pk}/").content.decode()
    assert 'id="failing-share"' in html
    assert "67% of this profile" in html


def test_failing_share_ignores_successes_and_an_unused_profile(
    org: Any, alice_mailbox: Mailbox, profile: EmailServerProfile
) -> None:
    now = timezone.now()
    SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.SUCCEEDED, finished_at=now)
    SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.PARTIAL, finished_at=now)

    assert failing_share(profile, now) == 0
    assert failing_share(make_profile(org, "Unused"), now) == 0
