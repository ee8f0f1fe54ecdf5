"""Round trips per record type against the EWS simulator (SYNC.md's table, end to end)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from crm.models import Appointment, Contact, Task
from syncjobs.models import Conflict, ItemLink, LinkState, RunStatus
from tests.syncjobs.conftest import items, mailbox_values, operations, sync

pytestmark = pytest.mark.django_db(transaction=True)


def contact(org: Any, owner: Any, **fields: Any) -> Contact:
    values = {"first_name": "Ann", "last_name": "Lee", "email": "ann@example.org", "job_title": "Buyer", **fields}
    return Contact.objects.create(organization=org, owner=owner, **values)


def test_a_new_contact_reaches_the_mailbox_stamped_with_its_id(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    c = contact(org, alice)
    run = sync(mailbox)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts["to_exchange"] == {"created": 1}
    [item] = items(sim, "contacts")
    assert (item["givenName"], item["surname"]) == ("Ann", "Lee")
    assert any(p["value"] == str(c.pk) for p in item["extended_properties"])
    link = ItemLink.objects.get(crm_id=c.pk)
    assert link.exchange_id == item["id"] and link.state == LinkState.OK


def test_a_run_that_changes_nothing_sends_one_sync_request_per_folder(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    contact(org, alice)
    sync(mailbox)
    sim.control.clear_requests()
    run = sync(mailbox)
    assert run.status == RunStatus.SUCCEEDED
    assert sorted(operations(sim)) == ["SyncFolderItems"] * 3


def test_an_edit_in_the_mailbox_reaches_the_crm(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    c = contact(org, alice)
    sync(mailbox)
    [item] = items(sim, "contacts")
    sim.control.update_item(item["id"], {"job_title": "Head of buying"})
    run = sync(mailbox)
    assert run.counts["to_crm"] == {"updated": 1}
    c.refresh_from_db()
    assert c.job_title == "Head of buying"
    assert c.version == 2


def test_edits_of_different_fields_on_both_sides_both_survive(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    c = contact(org, alice)
    sync(mailbox)
    [item] = items(sim, "contacts")
    sim.control.update_item(item["id"], {"job_title": "Director"})
    c.mobile_phone = "+45 1234"
    c.save()
    run = sync(mailbox)
    assert run.status == RunStatus.SUCCEEDED, run.error
    c.refresh_from_db()
    [values] = mailbox_values(mailbox, "contacts")
    assert c.job_title == values["job_title"] == "Director"
    assert c.mobile_phone == values["mobile_phone"] == "+45 1234"
    assert not Conflict.objects.exists()


def test_the_same_field_changed_on_both_sides_is_a_conflict_the_later_change_wins(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    c = contact(org, alice)
    sync(mailbox)
    [item] = items(sim, "contacts")
    sim.control.update_item(item["id"], {"job_title": "From the mailbox"})
    c.job_title = "From the CRM"
    c.save()  # later than the mailbox edit
    run = sync(mailbox)
    assert run.counts.get("conflicts") == 1
    conflict = Conflict.objects.get()
    assert conflict.fields == ["job_title"]
    assert conflict.base == {"job_title": "Buyer"}
    assert conflict.crm_values == {"job_title": "From the CRM"}
    assert conflict.exchange_values == {"job_title": "From the mailbox"}
    assert conflict.resolution == {"job_title": "crm"}
    [values] = mailbox_values(mailbox, "contacts")
    assert values["job_title"] == "From the CRM"


def test_a_record_deleted_in_the_crm_is_deleted_in_the_mailbox(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    c = contact(org, alice)
    sync(mailbox)
    c.delete()
    run = sync(mailbox)
    assert run.counts["to_exchange"] == {"deleted": 1}
    assert items(sim, "contacts") == []
    assert not ItemLink.objects.exists()


def test_an_item_deleted_in_the_mailbox_keeps_the_record(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    c = contact(org, alice)
    sync(mailbox)
    [item] = items(sim, "contacts")
    sim.control.delete_item(item["id"])
    run = sync(mailbox)
    assert run.counts.get("removed_in_mailbox") == 1
    assert Contact.objects.filter(pk=c.pk).exists()
    assert ItemLink.objects.get(crm_id=c.pk).state == LinkState.REMOVED_IN_MAILBOX
    c.job_title = "Changed later"
    c.save()
    sync(mailbox)
    assert items(sim, "contacts") == []  # not pushed back


def test_a_record_leaving_the_filter_is_removed_from_the_mailbox(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    c = contact(org, alice)
    sync(mailbox)
    c.is_active = False
    c.save()
    run = sync(mailbox)
    assert run.counts["to_exchange"] == {"deleted": 1}
    assert items(sim, "contacts") == []
    assert Contact.objects.filter(pk=c.pk).exists()


def test_with_logical_deletes_ignored_a_record_leaving_the_filter_stays(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    org.ignore_logical_deletes = True
    org.save()
    c = contact(org, alice)
    sync(mailbox)
    c.is_active = False
    c.save()
    run = sync(mailbox)
    assert run.counts.get("unlinked") == 1
    assert len(items(sim, "contacts")) == 1
    assert not ItemLink.objects.exists()


def test_a_tracked_mailbox_item_is_created_in_the_crm_and_a_private_one_is_not(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    sim.control.add_item(
        "alice@example.com", "contacts", {"given_name": "Tom", "surname": "Tracked", "categories": ["Tracked to CRM"]}
    )
    sim.control.add_item("alice@example.com", "contacts", {"given_name": "Pia", "surname": "Private"})
    run = sync(mailbox)
    assert run.counts["to_crm"] == {"created": 1}
    [c] = Contact.objects.all()
    assert (c.first_name, c.last_name, c.owner) == ("Tom", "Tracked", alice)
    tracked = [i for i in items(sim, "contacts") if i["surname"] == "Tracked"][0]
    assert any(p["value"] == str(c.pk) for p in tracked["extended_properties"])
    sync(mailbox)
    assert Contact.objects.count() == 1


def test_appointments_and_tasks_round_trip(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    start = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    a = Appointment.objects.create(
        organization=org,
        owner=alice,
        subject="Visit",
        start=start,
        end=start + timedelta(hours=1),
        attendees=["bo@example.org"],
    )
    t = Task.objects.create(organization=org, owner=alice, subject="Call back", priority="high")
    run = sync(mailbox)
    assert run.counts["to_exchange"] == {"created": 2}
    [cal] = items(sim, "calendar")
    [task] = items(sim, "tasks")
    assert cal["subject"] == "Visit" and task["subject"] == "Call back"
    sim.control.update_item(cal["id"], {"location": "Room 4"})
    sim.control.update_item(task["id"], {"status": "Completed"})
    sync(mailbox)
    a.refresh_from_db()
    t.refresh_from_db()
    assert a.location == "Room 4"
    assert t.status == "completed"


def make_appointment(org: Any, owner: Any) -> Appointment:
    start = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    return Appointment.objects.create(
        organization=org, owner=owner, subject="Review", start=start, end=start + timedelta(hours=1)
    )


def make_task(org: Any, owner: Any) -> Task:
    return Task.objects.create(organization=org, owner=owner, subject="Send offer")


KINDS = {
    "contact": ("contacts", contact, {"job_title": "Edited"}, "job_title"),
    "appointment": ("calendar", make_appointment, {"location": "Edited"}, "location"),
    "task": ("tasks", make_task, {"subject": "Edited"}, "subject"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_per_record_type(kind: str, mailbox: Any, org: Any, alice: Any, bob: Any, sim: Any) -> None:
    folder, make, edit, field = KINDS[kind]
    # CRM → mailbox
    record = make(org, alice)
    assert sync(mailbox).counts["to_exchange"] == {"created": 1}
    [item] = items(sim, folder)
    # a mailbox edit → CRM
    sim.control.update_item(item["id"], edit)
    assert sync(mailbox).counts["to_crm"] == {"updated": 1}
    record.refresh_from_db()
    assert getattr(record, field) == "Edited"
    # the record leaves the filter (another owner) → removed from the mailbox
    record.owner = bob
    record.save()
    assert sync(mailbox).counts["to_exchange"] == {"deleted": 1}
    assert items(sim, folder) == []
    # back in the filter → created again; deleted in the CRM → deleted in the mailbox
    record.owner = alice
    record.save()
    assert sync(mailbox).counts["to_exchange"] == {"created": 1}
    record.delete()
    assert sync(mailbox).counts["to_exchange"] == {"deleted": 1}
    assert items(sim, folder) == []
    # deleted in the mailbox → the record stays
    again = make(org, alice)
    sync(mailbox)
    [item] = items(sim, folder)
    sim.control.delete_item(item["id"])
    assert sync(mailbox).counts.get("removed_in_mailbox") == 1
    assert type(again).objects.filter(pk=again.pk).exists()


def test_a_long_subject_is_cut_by_exchange_and_does_not_loop(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    task = Task.objects.create(organization=org, owner=alice, subject="S" * 400)
    sync(mailbox)
    [item] = items(sim, "tasks")
    assert len(item["subject"]) == 255
    sim.control.clear_requests()
    run = sync(mailbox)
    assert run.counts["to_exchange"] == {} and run.counts["to_crm"] == {}
    task.refresh_from_db()
    assert len(task.subject) == 400  # the CRM keeps the whole subject
    sim.control.update_item(item["id"], {"status": "Completed"})
    sync(mailbox)
    task.refresh_from_db()
    assert (task.status, len(task.subject)) == ("completed", 400)


def test_a_past_appointment_leaving_a_date_filter_stays_in_the_calendar(
    mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    start = (timezone.now() - timedelta(days=20)).replace(microsecond=0)
    a = Appointment.objects.create(
        organization=org, owner=alice, subject="Old", start=start, end=start + timedelta(hours=1)
    )
    sync(mailbox)
    a.start, a.end = a.start - timedelta(days=30), a.end - timedelta(days=30)
    a.save()  # now outside "from 30 days ago"
    run = sync(mailbox)
    assert run.counts.get("unlinked") == 1
    assert len(items(sim, "calendar")) == 1
