"""Server-side rules ewsim applies the way Exchange does, each seen through exchangelib."""

from __future__ import annotations

import datetime

import pytest
from exchangelib import UTC, Account, CalendarItem, Contact, EWSDateTime, EWSTimeZone, Folder, HTMLBody, Message
from exchangelib.errors import ErrorFolderExists, ErrorInvalidIdMalformed, ErrorInvalidOperation, ErrorItemNotFound
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.recurrence import DailyPattern, Recurrence

from ewsim.model import new_id
from ewsim.testing import RunningSimulator

from .conftest import ALICE, BOB, AccountFactory, soap_post

ZURICH = EWSTimeZone("Europe/Zurich")
LONG = "".join(chr(ord("a") + i % 26) for i in range(4000))


def test_text_past_its_limit_is_cut_to_255_characters(alice: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    # exchangelib refuses over-long values of its CharFields before sending; lift that to see what the server does.
    for name in ("subject", "given_name", "middle_name", "surname"):
        monkeypatch.setattr(Contact.get_field_by_fieldname(name), "max_length", 10_000)
    names = ("subject", "given_name", "middle_name", "surname", "display_name", "company_name", "job_title")
    contact = Contact(
        account=alice,
        folder=alice.contacts,
        department=LONG,
        phone_numbers=[PhoneNumber(label="BusinessPhone", phone_number=LONG)],
        physical_addresses=[PhysicalAddress(label="Home", street=LONG, city="Bern")],
        **dict.fromkeys(names, LONG),
    )
    contact.save()
    got = alice.contacts.get(id=contact.id)
    for name in (*names, "department"):
        assert getattr(got, name) == LONG[:255], name
    assert [p.phone_number for p in got.phone_numbers] == [LONG[:255]]
    assert [(a.street, a.city) for a in got.physical_addresses] == [(LONG[:255], "Bern")]
    got.surname = "x" + LONG  # updates are cut too
    got.save(update_fields=["surname"])
    assert alice.contacts.get(id=contact.id).surname == ("x" + LONG)[:255]
    meeting = CalendarItem(
        account=alice, folder=alice.calendar, start=EWSDateTime(2024, 6, 1, 9, tzinfo=UTC), location=LONG
    )
    meeting.end = meeting.start + datetime.timedelta(hours=1)
    meeting.save()
    assert alice.calendar.get(id=meeting.id).location == LONG[:255]


def test_deleting_an_indexed_entry_removes_it(alice: Account) -> None:
    contact = Contact(
        account=alice,
        folder=alice.contacts,
        display_name="Ann",
        physical_addresses=[
            PhysicalAddress(label="Home", street="1 Road", city="Town"),
            PhysicalAddress(label="Business", street="2 Street", city="City"),
        ],
        phone_numbers=[
            PhoneNumber(label="HomePhone", phone_number="1"),
            PhoneNumber(label="MobilePhone", phone_number="2"),
        ],
        email_addresses=[
            EmailAddress(label="EmailAddress1", email="a@example.org"),
            EmailAddress(label="EmailAddress2", email="b@example.org"),
        ],
    )
    contact.save()
    # exchangelib deletes the Home address one sub-field at a time, and the Business street on its own
    contact.physical_addresses = [PhysicalAddress(label="Business", city="City")]
    contact.phone_numbers = [PhoneNumber(label="MobilePhone", phone_number="2")]
    contact.email_addresses = [EmailAddress(label="EmailAddress2", email="b@example.org")]
    contact.save(update_fields=["physical_addresses", "phone_numbers", "email_addresses"])
    got = alice.contacts.get(id=contact.id)
    assert [(a.label, a.street, a.city) for a in got.physical_addresses] == [("Business", None, "City")]
    assert [(p.label, p.phone_number) for p in got.phone_numbers] == [("MobilePhone", "2")]
    assert [(e.label, e.email) for e in got.email_addresses] == [("EmailAddress2", "b@example.org")]


@pytest.mark.parametrize(
    "tz, start_utc, end_utc",
    [(ZURICH, "2024-07-01T22:00:00Z", "2024-07-03T22:00:00Z"), (UTC, "2024-07-02T00:00:00Z", "2024-07-04T00:00:00Z")],
)
def test_all_day_items_span_whole_days_in_their_time_zone(
    make_account: AccountFactory, sim: RunningSimulator, tz: EWSTimeZone, start_utc: str, end_utc: str
) -> None:
    account = make_account(ALICE)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="offsite",
        is_all_day=True,
        start=EWSDateTime(2024, 7, 2, 10, 30, tzinfo=tz),
        end=EWSDateTime(2024, 7, 3, 15, tzinfo=tz),
    )
    item.save()
    stored = sim.control.get_item(item.id)
    assert (stored["start"], stored["end"]) == (start_utc, end_utc)  # back and forward to midnight in tz
    got = account.calendar.get(id=item.id)
    assert (got.start, got.end) == (datetime.date(2024, 7, 2), datetime.date(2024, 7, 3))


def test_calendar_view_includes_an_item_ending_at_the_window_start(alice: Account) -> None:
    def at(hour: int) -> EWSDateTime:
        return EWSDateTime(2024, 5, 1, hour, tzinfo=UTC)

    for subject, start, end in (("ends at start", 8, 9), ("inside", 10, 11), ("starts at end", 12, 13)):
        CalendarItem(account=alice, folder=alice.calendar, subject=subject, start=at(start), end=at(end)).save()
    assert [i.subject for i in alice.calendar.view(start=at(9), end=at(12))] == ["ends at start", "inside"]


def test_calendar_item_type(alice: Account) -> None:
    start = EWSDateTime(2024, 5, 1, 9, tzinfo=UTC)
    single = CalendarItem(account=alice, folder=alice.calendar, subject="once", start=start, end=start)
    single.save()
    series = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="daily",
        start=start,
        end=start,
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=start.date(), number=3),
    )
    series.save()
    assert alice.calendar.get(id=single.id).type == "Single"
    assert alice.calendar.get(id=series.id).type == "RecurringMaster"
    assert [i.subject for i in alice.calendar.filter(type="RecurringMaster")] == ["daily"]


def test_text_body_is_plain_text_of_the_body(alice: Account) -> None:
    html = (
        "<html><head><style>p {color: red}</style></head><body><p>Hello&nbsp;<b>world</b> &amp; you</p>"
        "<div>line 1<br>line   2</div></body></html>"
    )
    rich = Message(account=alice, folder=alice.drafts, subject="html", body=HTMLBody(html))
    rich.save()
    plain = Message(account=alice, folder=alice.drafts, subject="text", body="just\ntext")
    plain.save()
    assert alice.drafts.get(id=rich.id).text_body == "Hello world & you\n\nline 1\nline 2"
    assert alice.drafts.get(id=plain.id).text_body == "just\ntext"


def test_update_item_send_and_save_copy_sends_the_draft(alice: Account, bob: Account) -> None:
    draft = Message(account=alice, folder=alice.drafts, subject="draft", body="x", to_recipients=[BOB])
    draft.save()
    draft.subject = "final"
    assert draft.send_and_save(update_fields=["subject"]) is None  # UpdateItem, SendAndSaveCopy: no item back
    assert alice.drafts.all().count() == 0
    assert [m.subject for m in alice.sent.all()] == ["final"]
    assert [(m.subject, m.is_read) for m in bob.inbox.all()] == [("final", False)]


MIME = (
    "From: Ann Customer <ann@customer.test>\r\n"
    f"To: {ALICE}, Bob <{BOB}>\r\n"
    "Cc: carol@example.com\r\n"
    "Subject: =?utf-8?q?Offer_f=C3=BCr_you?=\r\n"
    "Date: Sat, 01 Jun 2024 10:00:00 +0200\r\n"
    "Message-ID: <offer-1@customer.test>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    "--b1\r\n"
    'Content-Type: multipart/alternative; boundary="b2"\r\n\r\n'
    "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the offer.\r\n"
    "--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See the <b>offer</b>.</p>\r\n"
    "--b2--\r\n"
    "--b1\r\n"
    'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="offer.pdf"\r\n'
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n"
    "--b1--\r\n"
)


def test_create_item_with_mime_content_parses_it(alice: Account) -> None:
    message = Message(account=alice, folder=alice.inbox, mime_content=MIME.encode())
    message.save()
    got = alice.inbox.get(id=message.id)
    assert got.subject == "Offer für you"
    assert (got.author.name, got.author.email_address) == ("Ann Customer", "ann@customer.test")
    assert got.sender.email_address == "ann@customer.test"
    assert [r.email_address for r in got.to_recipients] == [ALICE, BOB]
    assert [r.email_address for r in got.cc_recipients] == ["carol@example.com"]
    assert isinstance(got.body, HTMLBody) and "<b>offer</b>" in got.body
    assert got.text_body == "See the offer."
    assert got.message_id == "<offer-1@customer.test>"
    assert got.datetime_sent == EWSDateTime(2024, 6, 1, 8, tzinfo=UTC)
    assert got.has_attachments is True
    [pdf] = got.attachments
    assert (pdf.name, pdf.content_type, pdf.content) == ("offer.pdf", "application/pdf", b"%PDF-1.4")
    assert got.mime_content == MIME.encode()  # Exchange keeps the MIME of internet mail as it came


def test_malformed_ids_are_invalid_id_malformed(alice: Account, sim: RunningSimulator) -> None:
    malformed, unknown = list(alice.fetch(ids=[("not an id", "ck"), (new_id(), "ck")]))
    assert isinstance(malformed, ErrorInvalidIdMalformed)
    assert isinstance(unknown, ErrorItemNotFound)
    with pytest.raises(ErrorInvalidIdMalformed):
        alice.inbox.get(id="AAAA", changekey="x")
    for folder_id, code in (("garbage", b"ErrorInvalidIdMalformed"), (new_id(), b"ErrorFolderNotFound")):
        status, body = soap_post(
            sim,
            ALICE,
            "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
            f'<m:FolderIds><t:FolderId Id="{folder_id}"/></m:FolderIds></m:GetFolder>',
        )
        assert status == 200 and code in body


def test_folder_classes_are_not_invented(alice: Account) -> None:
    assert alice.msg_folder_root.folder_class is None
    assert alice.inbox.folder_class == "IPF.Note"
    Folder(parent=alice.inbox, name="Plain").save()
    alice.root.clear_cache()
    assert (alice.inbox / "Plain").folder_class is None  # not inherited from the Inbox


def test_duplicate_folder_name_message(alice: Account) -> None:
    Folder(parent=alice.inbox, name="Dup").save()
    with pytest.raises(ErrorFolderExists, match="Could not create folder 'dup'"):
        Folder(parent=alice.inbox, name="dup").save()


@pytest.mark.parametrize("tz, suffix", [(ZURICH, "+02:00"), (UTC, "Z")])
def test_recurrence_dates_carry_the_time_zone_offset(
    make_account: AccountFactory, sim: RunningSimulator, tz: EWSTimeZone, suffix: str
) -> None:
    account = make_account(ALICE)
    start = EWSDateTime(2024, 6, 1, 9, tzinfo=tz)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="daily",
        start=start,
        end=start + datetime.timedelta(hours=1),
        recurrence=Recurrence(
            pattern=DailyPattern(interval=1), start=datetime.date(2024, 6, 1), end=datetime.date(2024, 6, 30)
        ),
    )
    item.save()
    got = account.calendar.get(id=item.id)
    assert (got.recurrence.boundary.start, got.recurrence.boundary.end) == (
        datetime.date(2024, 6, 1),
        datetime.date(2024, 6, 30),
    )
    status, body = soap_post(
        sim,
        ALICE,
        "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>"
        '<t:FieldURI FieldURI="calendar:Recurrence"/></t:AdditionalProperties></m:ItemShape>'
        f'<m:ItemIds><t:ItemId Id="{item.id}"/></m:ItemIds></m:GetItem>',
    )
    assert f"<t:StartDate>2024-06-01{suffix}</t:StartDate>".encode() in body
    assert f"<t:EndDate>2024-06-30{suffix}</t:EndDate>".encode() in body


def test_unsupported_operation_fails_at_once(alice: Account, sim: RunningSimulator) -> None:
    sim.control.clear_requests()
    with pytest.raises(ErrorInvalidOperation, match="ResolveNames"):
        alice.protocol.resolve_names(names=[BOB])
    log = sim.control.requests()
    assert [(r["operation"], r["response_code"]) for r in log] == [("ResolveNames", "ErrorInvalidOperation")]
