"""Create/get/update/delete/move for each item class, and messages between mailboxes."""

from __future__ import annotations

import email
from decimal import Decimal

import pytest
from exchangelib import UTC, Account, Attendee, CalendarItem, Contact, EWSDateTime, Mailbox, Message, Task
from exchangelib.errors import ErrorItemNotFound
from exchangelib.indexed_properties import EmailAddress, PhoneNumber

from ewsim.model import new_id
from ewsim.testing import RunningSimulator

from .conftest import ALICE, BOB, AccountFactory, soap_post


def dt(hour: int, day: int = 1) -> EWSDateTime:
    return EWSDateTime(2024, 3, day, hour, 0, tzinfo=UTC)


def test_calendar_item_round_trip(alice: Account) -> None:
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Kick-off",
        body="Agenda",
        start=dt(9),
        end=dt(10),
        location="Room 1",
        legacy_free_busy_status="Tentative",
        required_attendees=[Attendee(mailbox=Mailbox(email_address=BOB), response_type="Unknown")],
    )
    item.save()
    assert item.id and item.changekey
    got = alice.calendar.get(id=item.id)
    assert (got.subject, got.body, got.location) == ("Kick-off", "Agenda", "Room 1")
    assert (got.start, got.end) == (dt(9), dt(10))
    assert got.legacy_free_busy_status == "Tentative"
    assert got.organizer.email_address == ALICE
    assert [a.mailbox.email_address for a in got.required_attendees] == [BOB]
    assert got.item_class == "IPM.Appointment"


def test_recurrence_is_stored_and_returned(alice: Account) -> None:
    from exchangelib.recurrence import DailyPattern, Recurrence

    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Daily",
        start=dt(8),
        end=dt(9),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=dt(8).date(), number=5),
    )
    item.save()
    got = alice.calendar.get(id=item.id)
    assert isinstance(got.recurrence.pattern, DailyPattern)
    assert got.recurrence.boundary.number == 5


def test_contact_round_trip_with_indexed_fields(alice: Account) -> None:
    contact = Contact(
        account=alice,
        folder=alice.contacts,
        given_name="Ada",
        surname="Lovelace",
        display_name="Ada Lovelace",
        company_name="Analytical",
        email_addresses=[EmailAddress(email="ada@example.org", label="EmailAddress1")],
        phone_numbers=[PhoneNumber(label="BusinessPhone", phone_number="+41 1 234")],
    )
    contact.save()
    got = alice.contacts.get(id=contact.id)
    assert (got.given_name, got.surname, got.company_name) == ("Ada", "Lovelace", "Analytical")
    assert [e.email for e in got.email_addresses] == ["ada@example.org"]
    got.email_addresses = [EmailAddress(email="ada@new.example", label="EmailAddress1")]
    got.phone_numbers = [PhoneNumber(label="BusinessPhone", phone_number="+41 9 999")]
    got.save(update_fields=["email_addresses", "phone_numbers"])
    again = alice.contacts.get(id=contact.id)
    assert [e.email for e in again.email_addresses] == ["ada@new.example"]
    assert [p.phone_number for p in again.phone_numbers] == ["+41 9 999"]


def test_task_round_trip(alice: Account) -> None:
    task = Task(
        account=alice, folder=alice.tasks, subject="Call back", status="InProgress", percent_complete=Decimal(50)
    )
    task.save()
    got = alice.tasks.get(id=task.id)
    assert (got.subject, got.status, got.percent_complete) == ("Call back", "InProgress", Decimal(50))


REQUIRED = {CalendarItem: {"start": dt(9), "end": dt(10)}, Contact: {"display_name": "C"}}


@pytest.mark.parametrize(
    "cls, folder_attr", [(Message, "drafts"), (CalendarItem, "calendar"), (Contact, "contacts"), (Task, "tasks")]
)
def test_update_gives_new_changekey_and_persists(alice: Account, cls: type, folder_attr: str) -> None:
    folder = getattr(alice, folder_attr)
    item = cls(account=alice, folder=folder, subject="before", categories=["A"], **REQUIRED.get(cls, {}))
    item.save()
    first_key = item.changekey
    item.subject = "after"
    item.categories = ["A", "B"]
    item.save(update_fields=["subject", "categories"])
    assert item.changekey != first_key
    got = folder.get(id=item.id)
    assert got.subject == "after"
    assert got.categories == ["A", "B"]
    assert got.changekey == item.changekey


def test_delete_item_field(alice: Account) -> None:
    item = CalendarItem(account=alice, folder=alice.calendar, subject="x", start=dt(9), end=dt(10), location="L")
    item.save()
    item.location = None
    item.save(update_fields=["location"])
    assert alice.calendar.get(id=item.id).location is None


def test_append_to_item_field(alice: Account, sim: RunningSimulator) -> None:
    item = Message(account=alice, folder=alice.drafts, subject="s", body="Hello", to_recipients=[BOB])
    item.save()
    # exchangelib never sends AppendToItemField; other EWS clients do.
    status, body = soap_post(
        sim,
        ALICE,
        f"""<m:UpdateItem ConflictResolution="AlwaysOverwrite"
        MessageDisposition="SaveOnly"><m:ItemChanges><t:ItemChange><t:ItemId Id="{item.id}"/><t:Updates>
        <t:AppendToItemField><t:FieldURI FieldURI="item:Body"/><t:Message><t:Body BodyType="Text">, world</t:Body>
        </t:Message></t:AppendToItemField>
        <t:AppendToItemField><t:FieldURI FieldURI="message:ToRecipients"/><t:Message><t:ToRecipients><t:Mailbox>
        <t:EmailAddress>carol@example.com</t:EmailAddress></t:Mailbox></t:ToRecipients></t:Message>
        </t:AppendToItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>""",
    )
    assert status == 200 and b"NoError" in body
    got = alice.drafts.get(id=item.id)
    assert got.body == "Hello, world"
    assert [r.email_address for r in got.to_recipients] == [BOB, "carol@example.com"]


@pytest.mark.parametrize("how", ["delete", "soft_delete"])
def test_hard_and_soft_delete_remove_the_item(alice: Account, how: str) -> None:
    item = Task(account=alice, folder=alice.tasks, subject="bye")
    item.save()
    item_id = item.id
    getattr(item, how)()
    with pytest.raises(ErrorItemNotFound):
        alice.tasks.get(id=item_id)
    assert alice.trash.all().count() == 0
    # a soft delete lands in the dumpster (with a new id), a hard delete is gone
    assert alice.recoverable_items_deletions.all().count() == (1 if how == "soft_delete" else 0)


def test_move_to_deleted_items(alice: Account) -> None:
    item = Task(account=alice, folder=alice.tasks, subject="to trash")
    item.save()
    item.move_to_trash()
    assert alice.tasks.all().count() == 0
    assert [t.subject for t in alice.trash.all()] == ["to trash"]
    moved = alice.trash.all()[0]
    moved.move_to_trash()  # trashing what is in the trash soft-deletes it, as Exchange does
    assert alice.trash.all().count() == 0
    assert [t.subject for t in alice.recoverable_items_deletions.all()] == ["to trash"]


def test_move_item_changes_folder_and_id(alice: Account, sim: RunningSimulator) -> None:
    item = Message(account=alice, folder=alice.inbox, subject="file me")
    item.save()
    old_id = item.id
    item.move(alice.sent)
    assert item.id != old_id
    assert alice.inbox.all().count() == 0
    assert [m.subject for m in alice.sent.all()] == ["file me"]
    assert [i["subject"] for i in sim.control.items(ALICE, "sentitems")] == ["file me"]


def test_copy_item(alice: Account) -> None:
    item = Message(account=alice, folder=alice.inbox, subject="twin")
    item.save()
    item.copy(alice.drafts)
    assert alice.inbox.all().count() == 1
    assert [m.subject for m in alice.drafts.all()] == ["twin"]


def test_get_item_by_unknown_id(alice: Account) -> None:
    with pytest.raises(ErrorItemNotFound):
        alice.inbox.get(id=new_id(), changekey="x")  # well-formed, but no such item


def test_send_and_save_copy_delivers_to_recipient(alice: Account, bob: Account) -> None:
    Message(account=alice, subject="Lunch?", body="At noon", to_recipients=[BOB]).send_and_save()
    received = list(bob.inbox.all())
    assert [(m.subject, m.is_read) for m in received] == [("Lunch?", False)]
    assert received[0].sender.email_address == ALICE
    assert [m.subject for m in alice.sent.all()] == ["Lunch?"]
    assert alice.inbox.all().count() == 0


def test_send_only_keeps_no_copy_and_ignores_outside_recipients(alice: Account, bob: Account) -> None:
    Message(account=alice, subject="FYI", body="x", to_recipients=[BOB, "someone@elsewhere.test"]).send(save_copy=False)
    assert alice.sent.all().count() == 0
    assert [m.subject for m in bob.inbox.all()] == ["FYI"]


def test_send_saved_draft(alice: Account, bob: Account) -> None:
    draft = Message(account=alice, folder=alice.drafts, subject="Draft", body="x", to_recipients=[BOB])
    draft.save()
    draft.send()
    assert alice.drafts.all().count() == 0
    assert [m.subject for m in alice.sent.all()] == ["Draft"]
    assert [m.subject for m in bob.inbox.all()] == ["Draft"]


def test_mime_content_is_generated(alice: Account, bob: Account) -> None:
    Message(account=alice, subject="Mime me", body="Body text", to_recipients=[BOB]).send()
    msg = bob.inbox.all().only("mime_content")[0]
    parsed = email.message_from_bytes(msg.mime_content)
    assert parsed["Subject"] == "Mime me"
    assert ALICE in parsed["From"]
    assert BOB in parsed["To"]
    assert parsed.get_payload(decode=True).decode().strip() == "Body text"


def test_read_flag_update(bob: Account, alice: Account) -> None:
    Message(account=alice, subject="unread", body="x", to_recipients=[BOB]).send()
    msg = bob.inbox.all()[0]
    assert msg.is_read is False
    msg.is_read = True
    msg.save(update_fields=["is_read"])
    assert bob.inbox.get(id=msg.id).is_read is True
    assert bob.inbox.filter(is_read=False).count() == 0


def test_bulk_create_and_bulk_get(alice: Account) -> None:
    items = [Task(folder=alice.tasks, subject=f"t{i}") for i in range(150)]
    results = alice.bulk_create(folder=alice.tasks, items=items)
    assert len(results) == 150 and all(r.id for r in results)
    fetched = list(alice.fetch(ids=[(r.id, r.changekey) for r in results]))
    assert sorted(f.subject for f in fetched) == sorted(f"t{i}" for i in range(150))
    alice.bulk_delete(ids=results)
    assert alice.tasks.all().count() == 0


def test_all_day_event_and_time_zones(make_account: AccountFactory) -> None:
    from exchangelib import EWSDate, EWSTimeZone

    zurich = EWSTimeZone("Europe/Zurich")
    account = make_account(ALICE)
    account.default_timezone = zurich
    timed = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="timed",
        start=EWSDateTime(2024, 7, 1, 10, tzinfo=zurich),
        end=EWSDateTime(2024, 7, 1, 11, tzinfo=zurich),
    )
    timed.save()
    all_day = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="holiday",
        is_all_day=True,
        start=EWSDate(2024, 7, 2),
        end=EWSDate(2024, 7, 3),
        reminder_is_set=False,
    )
    all_day.save()
    got = account.calendar.get(id=timed.id)
    assert got.start == EWSDateTime(2024, 7, 1, 8, tzinfo=UTC)  # same instant, answered in UTC
    got_day = account.calendar.get(id=all_day.id)
    assert (got_day.is_all_day, got_day.start, got_day.end) == (True, EWSDate(2024, 7, 2), EWSDate(2024, 7, 3))
    assert got_day.reminder_is_set is False
    assert [
        i.subject
        for i in account.calendar.filter(
            start__gte=EWSDateTime(2024, 7, 1, 9, 30, tzinfo=zurich),
            start__lt=EWSDateTime(2024, 7, 1, 12, tzinfo=zurich),
        )
    ] == ["timed"]
