"""What differs per record type: appointment attendees and times, related records, the sync state, the admin."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from audit.log import Actor
from audit.models import AuditEvent
from crm.models import Account, Appointment, Contact, FieldDirection, RecordType, SyncFilter
from mailboxes.models import Mailbox, Membership, Organization, Role
from syncjobs.models import Conflict, ConflictStatus, ItemLink, LinkState
from tests.conftest import client_for, make_mailbox, make_user
from tests.crm.test_views import POSTS, assert_refused, edit_data, make_record, url

pytestmark = pytest.mark.django_db


def create_appointment(client: Any, org: Organization, **fields: Any) -> Any:
    return client.post("/crm/appointments/new/", {"organization": org.pk, **POSTS["appointment"], **fields})


# Appointments: attendees


def test_attendees_are_parsed_normalised_and_deduplicated(org: Organization, alice: Any) -> None:
    typed = "Bob@Example.com, ada@example.com\r\nADA@example.com;  carol@example.org\n\n"
    response = create_appointment(client_for(alice), org, attendees=typed)
    assert response.status_code == 302
    assert Appointment.objects.get().attendees == ["ada@example.com", "bob@example.com", "carol@example.org"]


def test_attendees_reject_what_is_not_an_address(org: Organization, alice: Any) -> None:
    response = create_appointment(client_for(alice), org, attendees="ada@example.com, not-an-address, x@")
    assert_refused(response, "attendees", "Not an email address: not-an-address, x@")
    assert not Appointment.objects.exists()


def test_the_edit_form_shows_attendees_one_per_line_and_reordering_them_changes_nothing(
    org: Organization, alice: Any
) -> None:
    appointment = make_record("appointment", org, alice, attendees=["ada@example.com", "bob@example.com"])
    client = client_for(alice)
    data = edit_data(client, "appointment", appointment)
    assert data["attendees"] == "ada@example.com\nbob@example.com"

    data["attendees"] = "BOB@example.com, ada@example.com"
    assert client.post(url("appointment", "edit", appointment), data).status_code == 302
    appointment.refresh_from_db()
    assert appointment.version == 1


def test_detail_shows_what_each_attendee_resolves_to(org: Organization, alice: Any, bob: Any) -> None:
    ada = make_record("contact", org, alice, email="ada@example.com")
    bobs_lead = make_record("lead", org, bob, email="lead@example.com")
    appointment = make_record(
        "appointment",
        org,
        alice,
        attendees=["ada@example.com", "bob@example.com", "lead@example.com", "nobody@example.com"],
    )

    response = client_for(alice).get(url("appointment", "detail", appointment))

    rows = {row["address"]: row for row in response.context["attendees"]}
    assert rows["ada@example.com"]["found"] == ada
    assert rows["ada@example.com"]["url"] == "contact-detail"
    assert rows["bob@example.com"]["name"] == "Bob"  # a portal user
    assert rows["lead@example.com"]["found"] == bobs_lead
    assert rows["lead@example.com"]["url"] is None  # bob's lead: alice may not open it
    assert rows["nobody@example.com"]["found"] is None
    html = response.content.decode()
    assert f'href="/crm/contacts/{ada.pk}/"' in html
    assert f'href="/crm/leads/{bobs_lead.pk}/"' not in html
    assert "not found in the CRM" in html


# Appointments: times and what they regard


def test_times_are_entered_and_shown_in_the_portals_time_zone(org: Organization, alice: Any, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    client = client_for(alice)

    create_appointment(client, org, start="2026-12-02T09:00", end="2026-12-02T10:30")

    appointment = Appointment.objects.get()
    assert appointment.start == datetime.datetime(2026, 12, 2, 8, 0, tzinfo=datetime.UTC)
    assert appointment.end == datetime.datetime(2026, 12, 2, 9, 30, tzinfo=datetime.UTC)
    html = client.get(url("appointment", "edit", appointment)).content.decode()
    assert 'type="datetime-local" name="start" value="2026-12-02T09:00"' in html
    assert "2026-12-02 09:00" in client.get(url("appointment", "detail", appointment)).content.decode()
    assert "2026-12-02 10:30" in client.get("/crm/appointments/").content.decode()


def test_an_appointment_cannot_end_before_it_starts(org: Organization, alice: Any) -> None:
    response = create_appointment(client_for(alice), org, start="2026-12-02T09:00", end="2026-12-02T08:59")
    assert_refused(response, "end", "must not be before the start")


def test_an_appointment_regards_an_account_or_a_contact_not_both(org: Organization, alice: Any) -> None:
    account, contact = make_record("account", org, alice), make_record("contact", org, alice)
    response = create_appointment(client_for(alice), org, regarding_account=account.pk, regarding_contact=contact.pk)
    assert_refused(response, "__all__", "an account or a contact, not both")
    assert create_appointment(client_for(alice), org, regarding_account=account.pk).status_code == 302
    assert Appointment.objects.get().regarding_account == account


def test_a_user_may_only_link_records_she_sees(org: Organization, alice: Any, bob: Any) -> None:
    bobs_account = make_record("account", org, bob, name="Bob's")
    client = client_for(alice)
    response = client.post(
        "/crm/contacts/new/", {"organization": org.pk, **POSTS["contact"], "account": bobs_account.pk}
    )
    assert_refused(response, "account", "Select a valid choice")
    assert list(response.context["form"].fields["account"].queryset) == []


def test_an_admin_of_two_organizations_cannot_link_across_them(
    org: Organization, other_org: Organization, outsider: Any, admin: Any
) -> None:
    Membership.add(Actor.system(), outsider, org, Role.ADMINISTRATOR)
    globex_account = make_record("account", other_org, outsider, name="Globex")
    client = client_for(outsider)
    data = {"organization": org.pk, "owner": admin.pk, **POSTS["contact"], "account": globex_account.pk}
    assert_refused(client.post("/crm/contacts/new/", data), "account", "same organization")
    assert not Contact.objects.exists()


def test_detail_links_the_related_account(org: Organization, alice: Any) -> None:
    account = make_record("account", org, alice, name="Initech")
    contact = make_record("contact", org, alice, account=account)
    html = client_for(alice).get(url("contact", "detail", contact)).content.decode()
    assert f'<a href="/crm/accounts/{account.pk}/">Initech</a>' in html


def test_a_task_due_date_is_a_date_input(org: Organization, alice: Any) -> None:
    task = make_record("task", org, alice, due=datetime.date(2026, 12, 24))
    html = client_for(alice).get(url("task", "edit", task)).content.decode()
    assert 'type="date" name="due" value="2026-12-24"' in html


# Sync state per mailbox


@pytest.fixture
def synced(org: Organization, alice: Any, bob: Any, profile: Any, alice_mailbox: Mailbox) -> dict[str, Any]:
    """Alice's contact, in sync with alice's mailbox and in error in bob's, with conflicts."""
    contact = make_record("contact", org, alice)
    bobs_mailbox = make_mailbox(org, bob, "bob@example.com", profile)
    synced_at = datetime.datetime(2026, 11, 30, 14, 5, tzinfo=datetime.UTC)
    ok = ItemLink.objects.create(
        mailbox=alice_mailbox,
        record_type=RecordType.CONTACT,
        crm_id=contact.pk,
        exchange_id="AAA",
        last_synced_at=synced_at,
    )
    failing = ItemLink.objects.create(
        mailbox=bobs_mailbox,
        record_type=RecordType.CONTACT,
        crm_id=contact.pk,
        exchange_id="BBB",
        state=LinkState.ERROR,
        error_count=3,
        last_error="The change key is stale.",
    )
    for status in (ConflictStatus.OPEN, ConflictStatus.OPEN, ConflictStatus.CLOSED):
        Conflict.objects.create(
            mailbox=bobs_mailbox, link=failing, record_type=RecordType.CONTACT, crm_id=contact.pk, status=status
        )
    # Another record's link, and a task link with the same id: neither is this contact's.
    ItemLink.objects.create(mailbox=alice_mailbox, record_type=RecordType.TASK, crm_id=contact.pk, exchange_id="CCC")
    return {"contact": contact, "ok": ok, "failing": failing, "bob_mailbox": bobs_mailbox}


def test_detail_shows_the_sync_state_per_mailbox(synced: dict, admin: Any, alice_mailbox: Mailbox) -> None:
    response = client_for(admin).get(url("contact", "detail", synced["contact"]))

    rows = [(str(r["mailbox"]), r["link"], r["conflicts"]) for r in response.context["sync_rows"]]
    assert rows == [("alice@example.com", synced["ok"], 0), ("bob@example.com", synced["failing"], 2)]
    table = response.content.decode().split('id="sync-state"', 1)[1].split("</table>", 1)[0]
    assert "In sync" in table
    assert "2026-11-30 14:05" in table
    assert "Error" in table and "3 failures" in table
    assert "The change key is stale." in table
    assert f'href="/mailboxes/{alice_mailbox.pk}/"' in table  # an admin may open the mailbox


def test_a_user_sees_the_sync_state_without_mailbox_links(synced: dict, alice: Any) -> None:
    html = client_for(alice).get(url("contact", "detail", synced["contact"])).content.decode()
    table = html.split('id="sync-state"', 1)[1].split("</table>", 1)[0]
    assert "alice@example.com" in table
    assert "/mailboxes/" not in table


def test_open_conflicts_count_when_the_link_is_gone(synced: dict, admin: Any) -> None:
    synced["failing"].delete()
    response = client_for(admin).get(url("contact", "detail", synced["contact"]))
    rows = [(str(r["mailbox"]), r["link"], r["conflicts"]) for r in response.context["sync_rows"]]
    assert rows == [("alice@example.com", synced["ok"], 0), ("bob@example.com", None, 2)]
    assert "Not linked" in response.content.decode()


@pytest.mark.parametrize("kind", ["appointment", "task"])
def test_appointments_and_tasks_show_their_links(
    kind: str, org: Organization, alice: Any, alice_mailbox: Mailbox
) -> None:
    record = make_record(kind, org, alice)
    ItemLink.objects.create(
        mailbox=alice_mailbox, record_type=kind, crm_id=record.pk, exchange_id="X", state=LinkState.QUARANTINED
    )
    response = client_for(alice).get(url(kind, "detail", record))
    assert [r["link"].state for r in response.context["sync_rows"]] == [LinkState.QUARANTINED]
    assert "Quarantined" in response.content.decode()


def test_a_record_never_synced_says_so(org: Organization, alice: Any) -> None:
    html = client_for(alice).get(url("task", "detail", make_record("task", org, alice))).content.decode()
    assert "Not synced with any mailbox yet." in html


@pytest.mark.parametrize("kind", ["account", "lead"])
def test_types_that_do_not_sync_have_no_sync_table(kind: str, org: Organization, alice: Any) -> None:
    response = client_for(alice).get(url(kind, "detail", make_record(kind, org, alice)))
    assert response.context["sync_rows"] is None
    assert "Sync state" not in response.content.decode()


# The Django admin


@pytest.fixture
def staff(db: Any) -> Any:
    return make_user("staff", is_staff=True, is_superuser=True)


def test_the_admin_lists_deleted_records_too(org: Organization, alice: Any, staff: Any) -> None:
    task = make_record("task", org, alice, subject="Gone")
    task.delete()
    make_record("task", org, alice, subject="Here")
    html = client_for(staff).get("/django-admin/crm/task/").content.decode()
    assert "Gone" in html and "Here" in html


def test_deleting_in_the_admin_is_the_soft_delete(org: Organization, alice: Any, staff: Any) -> None:
    account = make_record("account", org, alice)
    response = client_for(staff).post(f"/django-admin/crm/account/{account.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Account.objects.exists()
    assert Account.all_objects.get().deleted_at is not None


def test_sync_filter_and_field_direction_saves_in_the_admin_are_audited(
    org: Organization, alice: Any, staff: Any
) -> None:
    client = client_for(staff)
    data = {"organization": org.pk, "user": alice.pk, "record_type": "task", "name": "Open tasks", "enabled": "on"}
    data["rules"] = '{"match": "all", "rules": []}'
    assert client.post("/django-admin/crm/syncfilter/add/", data).status_code == 302
    sync_filter = SyncFilter.objects.get(name="Open tasks")
    assert AuditEvent.objects.filter(object_id=str(sync_filter.pk), actor=staff).exists()

    data = {"organization": org.pk, "record_type": "task", "field": "subject", "direction": "to_exchange"}
    assert client.post("/django-admin/crm/fielddirection/add/", data).status_code == 302
    direction = FieldDirection.objects.get()
    assert AuditEvent.objects.filter(object_id=str(direction.pk), actor=staff).exists()


def test_record_versions_are_read_only_in_the_admin(org: Organization, alice: Any, staff: Any) -> None:
    task = make_record("task", org, alice)
    response = client_for(staff).get(f"/django-admin/crm/task/{task.pk}/change/")
    assert "version" not in response.context["adminform"].form.fields
    assert "version" in response.context["adminform"].readonly_fields
