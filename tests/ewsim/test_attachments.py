"""File and item attachments through exchangelib, messages from raw MIME, and attachments surviving a restart."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
import requests
from exchangelib import UTC, Account, CalendarItem, EWSDateTime, FileAttachment, ItemAttachment, Message
from exchangelib.errors import ErrorAccessDenied, ErrorInvalidIdMalformed, ErrorItemNotFound
from exchangelib.properties import ItemId

from ewsim.client import ControlError
from ewsim.model import new_id
from ewsim.testing import RunningSimulator, running_simulator

from .conftest import ALICE, BOB, PASSWORD, AccountFactory

PDF = b"%PDF-1.4 not really a pdf \x00\xff"

FORWARD = (
    "From: Carol <carol@example.com>\r\n"
    f"To: {ALICE}\r\n"
    "Subject: Fwd: the order\r\n"
    "Date: Mon, 03 Jun 2024 09:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    "--outer\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
    "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    "From: Dan Buyer <dan@buyer.test>\r\n"
    "To: carol@example.com\r\n"
    "Subject: the order\r\n"
    "Message-ID: <order-7@buyer.test>\r\n"
    "Date: Sun, 02 Jun 2024 18:30:00 +0200\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="inner"\r\n\r\n'
    "--inner\r\nContent-Type: text/plain\r\n\r\nPlease ship 3 crates.\r\n"
    "--inner\r\nContent-Type: text/csv\r\n"
    'Content-Disposition: attachment; filename="order.csv"\r\n\r\nitem,qty\r\ncrate,3\r\n'
    "--inner--\r\n"
    "--outer--\r\n"
)


def test_file_attachments_in_create_item(alice: Account) -> None:
    message = Message(
        account=alice,
        folder=alice.drafts,
        subject="with files",
        attachments=[
            FileAttachment(name="offer.pdf", content=PDF),
            FileAttachment(name="logo.png", content=b"png", is_inline=True, content_id="logo@x"),
        ],
    )
    message.save()
    assert all(a.attachment_id and a.attachment_id.id for a in message.attachments)
    got = alice.drafts.get(id=message.id)
    assert got.has_attachments is True
    assert [(a.name, a.content_type, a.size, a.is_inline) for a in got.attachments] == [
        ("offer.pdf", "application/pdf", len(PDF), False),
        ("logo.png", "image/png", 3, True),
    ]
    assert got.attachments[1].content_id == "logo@x"
    assert [a.content for a in got.attachments] == [PDF, b"png"]  # each fetched with GetAttachment
    meeting = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="with agenda",
        start=EWSDateTime(2024, 6, 1, 9, tzinfo=UTC),
        end=EWSDateTime(2024, 6, 1, 10, tzinfo=UTC),
        attachments=[FileAttachment(name="agenda.txt", content=b"1. hello")],
    )
    meeting.save()
    [agenda] = alice.calendar.get(id=meeting.id).attachments
    assert (agenda.name, agenda.content) == ("agenda.txt", b"1. hello")


def test_create_and_delete_attachment_on_a_saved_item(alice: Account, sim: RunningSimulator) -> None:
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="later",
        start=EWSDateTime(2024, 6, 1, 9, tzinfo=UTC),
        end=EWSDateTime(2024, 6, 1, 10, tzinfo=UTC),
    )
    item.save()
    before = item.changekey
    notes = FileAttachment(name="notes.txt", content=b"minutes")
    item.attach(notes)  # CreateAttachment
    assert item.changekey != before and notes.attachment_id.id
    got = alice.calendar.get(id=item.id)
    assert (got.has_attachments, [a.name for a in got.attachments]) == (True, ["notes.txt"])
    assert got.changekey == item.changekey
    assert sim.control.get_item(item.id)["attachments"][0]["name"] == "notes.txt"
    item.detach(notes)  # DeleteAttachment
    got = alice.calendar.get(id=item.id)
    assert (got.has_attachments, got.attachments) == (False, [])


def test_forwarded_message_as_item_attachment(alice: Account, bob: Account) -> None:
    original = Message(
        subject="the order",
        body="Please ship 3 crates.",
        author="dan@buyer.test",
        to_recipients=[ALICE],
        attachments=[FileAttachment(name="order.csv", content=b"item,qty\ncrate,3\n")],
    )
    Message(
        account=alice,
        subject="Fwd: the order",
        body="See attached.",
        to_recipients=[BOB],
        attachments=[ItemAttachment(name="the order", item=original)],
    ).send_and_save()
    [received] = list(bob.inbox.all())
    assert received.has_attachments is True
    [attached] = received.attachments
    assert isinstance(attached, ItemAttachment) and attached.name == "the order"
    inner = attached.item  # GetAttachment with the embedded message
    assert isinstance(inner, Message)
    assert (inner.subject, inner.body, inner.author.email_address) == (
        "the order",
        "Please ship 3 crates.",
        "dan@buyer.test",
    )
    [csv] = inner.attachments
    assert (csv.name, csv.content) == ("order.csv", b"item,qty\ncrate,3\n")
    parsed = email.message_from_bytes(inner.mime_content, policy=email.policy.default)
    assert parsed["Subject"] == "the order" and "dan@buyer.test" in parsed["From"]
    assert [p.get_filename() for p in parsed.iter_attachments()] == ["order.csv"]
    # the sender's copy has its own attachment ids
    [sent] = list(alice.sent.all())
    assert sent.attachments[0].attachment_id.id != attached.attachment_id.id


def test_message_from_raw_mime_through_control(alice: Account, sim: RunningSimulator) -> None:
    created = sim.control.add_mime(ALICE, "inbox", FORWARD)
    assert (created["subject"], created["is_read"], created["from"]) == ("Fwd: the order", False, ["carol@example.com"])
    assert [(a["type"], a["name"]) for a in created["attachments"]] == [("ItemAttachment", "the order")]
    [message] = list(alice.inbox.all())
    assert (message.id, message.text_body) == (created["id"], "See below.")
    inner = message.attachments[0].item
    assert (inner.subject, inner.message_id, inner.author.name) == ("the order", "<order-7@buyer.test>", "Dan Buyer")
    assert inner.datetime_sent == EWSDateTime(2024, 6, 2, 16, 30, tzinfo=UTC)
    assert [(a.name, a.content) for a in inner.attachments] == [("order.csv", b"item,qty\r\ncrate,3")]
    # the JSON form, read already
    as_json = requests.post(
        f"{sim.url}/_ewsim/mailboxes/{ALICE}/folders/inbox/mime",
        json={"mime": "Subject: hi\r\n\r\nbody\r\n", "is_read": True},
        timeout=10,
    )
    assert as_json.status_code == 201 and as_json.json()["is_read"] is True


@pytest.mark.parametrize("body, status", [(b"", 400), (b'{"mime": 3}', 400), (b"{nope", 400)])
def test_bad_mime_requests(sim: RunningSimulator, body: bytes, status: int) -> None:
    resp = requests.post(f"{sim.url}/_ewsim/mailboxes/{ALICE}/folders/inbox/mime", data=body, timeout=10)
    assert resp.status_code == status
    with pytest.raises(ControlError) as missing:
        sim.control.add_mime("nobody@example.com", "inbox", "Subject: x\r\n\r\n")
    assert missing.value.status == 404


def test_attachment_ids_are_checked(alice: Account, bob: Account) -> None:
    from exchangelib.attachments import AttachmentId
    from exchangelib.services import GetAttachment

    theirs = Message(account=bob, folder=bob.drafts, attachments=[FileAttachment(name="x", content=b"x")])
    theirs.save()

    def get(*ids: AttachmentId) -> list:
        return list(
            GetAttachment(account=alice).call(
                items=ids, include_mime_content=False, body_type=None, filter_html_content=None, additional_fields=None
            )
        )

    assert [type(r) for r in get(AttachmentId(id="garbage"), AttachmentId(id=new_id()))] == [
        ErrorInvalidIdMalformed,
        ErrorItemNotFound,
    ]
    with pytest.raises(ErrorAccessDenied):
        get(theirs.attachments[0].attachment_id)


def test_copy_and_move_keep_attachments(alice: Account) -> None:
    item = Message(account=alice, folder=alice.drafts, attachments=[FileAttachment(name="a.txt", content=b"a")])
    item.save()
    item.copy(alice.inbox)
    item.move(alice.trash)
    [copied] = list(alice.inbox.all())
    [moved] = list(alice.trash.all())
    assert [a.content for a in copied.attachments] == [a.content for a in moved.attachments] == [b"a"]
    assert copied.attachments[0].attachment_id.id != moved.attachments[0].attachment_id.id
    alice.bulk_delete(ids=[ItemId(id=copied.id)])
    assert [a.content for a in alice.trash.get(id=moved.id).attachments] == [b"a"]


def test_attachments_survive_a_restart(tmp_path: Path, make_account: AccountFactory) -> None:
    data = str(tmp_path / "ewsim.sqlite3")
    with running_simulator(data=data) as first:
        first.control.create_mailbox("dora@example.com", PASSWORD)
        first.control.add_mime("dora@example.com", "inbox", FORWARD)
        listed = first.control.items("dora@example.com", "inbox")
    with running_simulator(data=data) as second:
        assert second.control.items("dora@example.com", "inbox") == listed
        from exchangelib import BASIC, DELEGATE, Configuration, Credentials, FailFast, Version
        from exchangelib.version import EXCHANGE_2016

        config = Configuration(
            service_endpoint=second.ews_url,
            credentials=Credentials("dora@example.com", PASSWORD),
            auth_type=BASIC,
            version=Version(build=EXCHANGE_2016),
            retry_policy=FailFast(),
        )
        account = Account("dora@example.com", config=config, autodiscover=False, access_type=DELEGATE)
        [message] = list(account.inbox.all())
        inner = message.attachments[0].item
        assert [(a.name, a.content) for a in inner.attachments] == [("order.csv", b"item,qty\r\ncrate,3")]
