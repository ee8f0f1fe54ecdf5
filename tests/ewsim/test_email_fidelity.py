"""What email tracking and sending rely on: MIME kept as it came, conversations, Message-IDs on send."""

from __future__ import annotations

import base64

from exchangelib import Account, Message
from exchangelib.properties import Mailbox as EwsMailbox

from ewsim.testing import RunningSimulator

from .conftest import ALICE, BOB, CrmId

RAW = (
    b"From: Ann <ann@customer.test>\r\nTo: alice@example.com\r\nSubject: Hello\r\n"
    b"Message-ID: <first@customer.test>\r\nX-Custom: kept\r\nContent-Type: text/plain; charset=klingon\r\n\r\nHi\r\n"
)


def reply(message_id: str, parent: str, references: str) -> bytes:
    return (
        f"From: ann@customer.test\r\nTo: alice@example.com\r\nSubject: RE: Hello\r\nMessage-ID: {message_id}\r\n"
        f"In-Reply-To: {parent}\r\nReferences: {references}\r\n\r\nAgain\r\n"
    ).encode()


def test_internet_mail_keeps_its_mime(sim: RunningSimulator, alice: Account) -> None:
    sim.control.add_mime(ALICE, "inbox", RAW)
    [got] = alice.inbox.all().only("mime_content", "message_id")
    assert got.mime_content == RAW and got.message_id == "<first@customer.test>"


def test_a_content_edit_rebuilds_the_mime_a_category_does_not(sim: RunningSimulator, alice: Account) -> None:
    item = sim.control.add_mime(ALICE, "inbox", RAW)
    sim.control.update_item(item["id"], {"categories": ["Tracked to CRM"]})
    assert alice.inbox.get(id=sim.control.items(ALICE, "inbox")[0]["id"]).mime_content == RAW
    sim.control.update_item(item["id"], {"subject": "Edited"})
    rebuilt = alice.inbox.get(id=item["id"]).mime_content
    assert b"Subject: Edited" in rebuilt and b"X-Custom" not in rebuilt


def test_categories_can_come_with_the_mime(sim: RunningSimulator, alice: Account) -> None:
    sim.control.add_mime(ALICE, "inbox", RAW, categories=["Tracked to CRM"])
    [got] = alice.inbox.all().only("categories")
    assert got.categories == ["Tracked to CRM"]


def test_a_thread_shares_its_conversation(sim: RunningSimulator, alice: Account) -> None:
    sim.control.add_mime(ALICE, "inbox", RAW)
    sim.control.add_mime(
        ALICE, "inbox", reply("<second@customer.test>", "<first@customer.test>", "<first@customer.test>")
    )
    refs = "<first@customer.test> <second@customer.test>"
    sim.control.add_mime(ALICE, "inbox", reply("<third@customer.test>", "<second@customer.test>", refs))
    sim.control.add_mime(ALICE, "inbox", RAW.replace(b"<first@", b"<other@"))
    got = {m.message_id: m for m in alice.inbox.all().only("message_id", "conversation_index", "conversation_id")}
    first, second, third = (got[f"<{n}@customer.test>"] for n in ("first", "second", "third"))
    other = got["<other@customer.test>"]
    assert len(first.conversation_index) == 22
    assert len(second.conversation_index) == 27 and len(third.conversation_index) == 32
    assert first.conversation_index[:22] == second.conversation_index[:22] == third.conversation_index[:22]
    assert first.conversation_id.id == second.conversation_id.id == third.conversation_id.id
    assert other.conversation_id.id != first.conversation_id.id


def test_thread_index_header_is_the_conversation_index(sim: RunningSimulator, alice: Account) -> None:
    index = bytes(range(27))
    raw = RAW.replace(b"X-Custom: kept\r\n", b"Thread-Index: " + base64.b64encode(index) + b"\r\n")
    sim.control.add_mime(ALICE, "inbox", raw)
    [got] = alice.inbox.all().only("conversation_index")
    assert got.conversation_index == index


def test_send_and_save_copy_gives_one_message_id_and_keeps_the_stamp(
    sim: RunningSimulator, alice: Account, bob: Account
) -> None:
    Message(
        account=alice,
        folder=alice.sent,
        subject="Offer",
        body="See attached",
        to_recipients=[EwsMailbox(email_address=BOB)],
        crm_id="crm-42",
    ).send_and_save()
    [sent] = alice.sent.filter(crm_id="crm-42").only("message_id", "crm_id", "mime_content")
    [received] = bob.inbox.all().only("message_id", "mime_content")
    assert sent.message_id and sent.message_id == received.message_id
    assert sent.message_id.encode() in received.mime_content


def test_mime_sent_with_send_and_save_copy_arrives_as_sent(sim: RunningSimulator, alice: Account, bob: Account) -> None:
    raw = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: CRM:7 Offer\r\nX-CRM-Email-Id: e-7\r\n\r\nHi\r\n"
    Message(account=alice, folder=alice.sent, mime_content=raw, crm_id="e-7").send_and_save()
    [sent] = alice.sent.filter(crm_id="e-7").only("message_id")
    [received] = bob.inbox.all().only("mime_content", "message_id")
    assert received.message_id == sent.message_id
    assert b"X-CRM-Email-Id: e-7" in received.mime_content and sent.message_id.encode() in received.mime_content


def test_folders_under_the_inbox_sync_their_messages(sim: RunningSimulator, alice: Account) -> None:
    from exchangelib import Folder

    folder = Folder(parent=alice.inbox, name="Ann")
    folder.save()
    sim.control.add_mime(ALICE, folder.id, RAW)
    changes = list(folder.sync_items(only_fields=["mime_content"]))
    assert [kind for kind, _ in changes] == ["create"] and changes[0][1].mime_content == RAW
    assert CrmId  # the stamp class is registered by the package's fixtures
