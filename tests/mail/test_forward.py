"""Forward mailboxes: messages forwarded as attachments are tracked for the forwarding user's
mailbox; what cannot be processed is recorded with its reason and blocks nothing."""

from __future__ import annotations

import os
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
from django.utils import timezone

from crm.models import Contact, Email, EmailReceipt, IgnoredMessage, TrackedBy
from ewsim.testing import running_simulator
from mailboxes.models import IncomingMethod, OutgoingMethod, OwnerType, ProfileKind, TrackingRule
from syncjobs.mail.ews import EwsIncoming
from syncjobs.mail.forward import NO_ATTACHMENT, process_forwarded
from syncjobs.mail.imap import IMAPTransport
from syncjobs.mail.tracking import track
from syncjobs.mail.transport import Fetched
from tests.conftest import make_mailbox, make_profile
from tests.mail.servers import Account, MailServers
from tests.mail.test_outgoing import mail_mailbox

pytestmark = pytest.mark.django_db(transaction=True)

FORWARD = "crm-forward@example.com"


def original(subject: str = "Order") -> EmailMessage:
    """A message Ann sent to Alice."""
    message = EmailMessage()
    message["From"] = "Ann <ann@customer.example>"
    message["To"] = "alice@example.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<{os.urandom(6).hex()}@customer.example>"
    message["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    message.set_content("Please send 40 units.")
    return message


def forwarded(*originals: EmailMessage, by: str = "alice@example.com") -> bytes:
    """What a server-side rule sends: the original messages attached to a message from the user."""
    message = EmailMessage()
    message["From"] = by
    message["To"] = FORWARD
    message["Subject"] = "FW: " + (str(originals[0]["Subject"]) if originals else "(nothing)")
    message["Message-ID"] = f"<{os.urandom(6).hex()}@example.com>"
    message.set_content("Forwarded by a rule.")
    for attached in originals:
        message.add_attachment(attached)
    return message.as_bytes(policy=SMTP)


def fetched(raw: bytes) -> Fetched:
    return Fetched(source_id=os.urandom(8).hex(), raw=raw, received_at=timezone.now())


@pytest.fixture
def alice_box(org: Any, alice: Any, profile: Any) -> Any:
    mailbox = make_mailbox(org, alice, "alice@example.com", profile, tracking_rule=TrackingRule.ALL)
    mailbox.approval_status = "approved"
    mailbox.save()
    return mailbox


@pytest.fixture
def forward_box(org: Any, profile: Any) -> Any:
    return make_mailbox(
        org,
        address=FORWARD,
        profile=profile,
        owner_type=OwnerType.QUEUE,
        queue_name="Forward mailbox",
        incoming_method=IncomingMethod.FORWARD_MAILBOX,
        outgoing_method=OutgoingMethod.NONE,
    )


def ignored(mailbox: Any) -> list[str]:
    return list(IgnoredMessage.objects.filter(mailbox=mailbox).values_list("reason", flat=True))


def test_an_attached_message_is_tracked_for_the_forwarding_users_mailbox(
    forward_box: Any, alice_box: Any, alice: Any, admin: Any
) -> None:
    org = forward_box.organization
    ann = Contact.objects.create(organization=org, owner=admin, last_name="Lee", email="ann@customer.example")
    message = original()
    email = process_forwarded(forward_box, fetched(forwarded(message)), transport=None)
    assert email is not None
    assert (email.subject, email.message_id, email.owner, email.mailbox) == (
        "Order",
        message["Message-ID"],
        alice,
        alice_box,
    )
    assert email.tracked_by == TrackedBy.RULE_ALL
    [receipt] = EmailReceipt.objects.filter(email=email)
    assert (receipt.mailbox, receipt.source_id) == (alice_box, "")
    assert {(r.kind, r.record) for r in email.recipients.all()} == {("from", ann), ("to", alice)}
    assert ignored(forward_box) == []


def test_the_users_tracking_rule_applies(forward_box: Any, alice_box: Any) -> None:
    alice_box.tracking_rule = TrackingRule.NONE
    alice_box.save()
    assert process_forwarded(forward_box, fetched(forwarded(original())), transport=None) is None
    assert not Email.objects.exists() and ignored(forward_box) == []


def test_each_attached_message_is_tracked_and_one_forwarded_twice_is_one_email(
    forward_box: Any, alice_box: Any
) -> None:
    first, second = original(subject="First"), original(subject="Second")
    process_forwarded(forward_box, fetched(forwarded(first, second)), transport=None)
    again = process_forwarded(forward_box, fetched(forwarded(first)), transport=None)
    assert sorted(Email.objects.values_list("subject", flat=True)) == ["First", "Second"]
    assert again is not None and again.message_id == first["Message-ID"]


def test_a_forwarded_copy_of_a_message_the_users_mailbox_tracked_keeps_its_receipt(
    forward_box: Any, alice_box: Any
) -> None:
    message = original()
    own = track(
        alice_box, Fetched(source_id="AAMk-alice", raw=message.as_bytes(), received_at=timezone.now(), folder="inbox")
    )
    again = process_forwarded(forward_box, fetched(forwarded(message)), transport=None)
    assert own is not None and again is not None and again.pk == own.pk
    [receipt] = EmailReceipt.objects.filter(email=own)
    assert (receipt.mailbox, receipt.source_id, receipt.folder) == (alice_box, "AAMk-alice", "inbox")


def test_a_message_without_an_attachment_is_recorded_with_the_reason(forward_box: Any, alice_box: Any) -> None:
    assert process_forwarded(forward_box, fetched(forwarded()), transport=None) is None
    assert ignored(forward_box) == [NO_ATTACHMENT]
    assert not Email.objects.exists()


def test_a_sender_without_a_mailbox_in_the_organization_is_recorded_with_the_reason(
    forward_box: Any, alice_box: Any, other_mailbox: Any
) -> None:
    process_forwarded(forward_box, fetched(forwarded(original(), by="stranger@elsewhere.example")), transport=None)
    # A mailbox of another organization is no mailbox of this one.
    process_forwarded(forward_box, fetched(forwarded(original(), by=other_mailbox.address)), transport=None)
    assert sorted(ignored(forward_box)) == [
        f"no mailbox in this organization for {other_mailbox.address}",
        "no mailbox in this organization for stranger@elsewhere.example",
    ]
    assert not Email.objects.exists()


def test_a_mailbox_whose_address_is_not_approved_gets_nothing(forward_box: Any, alice_box: Any) -> None:
    assert alice_box.organization.require_approval_user_mailboxes
    alice_box.approval_status = "pending"
    alice_box.save()
    process_forwarded(forward_box, fetched(forwarded(original())), transport=None)
    assert ignored(forward_box) == ["the address alice@example.com is not approved"]


def test_an_unreadable_attachment_is_recorded_and_the_others_are_tracked(forward_box: Any, alice_box: Any) -> None:
    broken = EmailMessage()
    broken.set_content("no headers at all")
    del broken["Content-Type"], broken["Content-Transfer-Encoding"], broken["MIME-Version"]
    good = original(subject="Readable")
    email = process_forwarded(forward_box, fetched(forwarded(broken, good)), transport=None)
    assert email is not None and email.subject == "Readable"
    [reason] = ignored(forward_box)
    assert reason.startswith("attached message 1: ")


def test_a_message_over_the_size_limit_is_recorded_and_one_before_the_mark_left_alone(
    forward_box: Any, alice_box: Any, settings: Any
) -> None:
    settings.EMAIL_MAX_BYTES = 500
    raw = forwarded(original())
    headers_only = Fetched(source_id="big", raw=raw[:200], received_at=timezone.now(), size=len(raw))
    assert process_forwarded(forward_box, headers_only, transport=None) is None
    assert ignored(forward_box) == [f"The message is {len(raw):,} bytes, more than the limit of 500 bytes."]
    forward_box.process_email_after = timezone.now()
    forward_box.save()
    old = Fetched(source_id="old", raw=b"", received_at=forward_box.process_email_after - timedelta(days=1))
    assert process_forwarded(forward_box, old, transport=None) is None
    assert len(ignored(forward_box)) == 1 and not Email.objects.exists()


# Deleting what was processed, on a real IMAP server ---------------------------------------------


@pytest.fixture
def imap_forward(org: Any, mail_servers: MailServers, mail_account: Account) -> Any:
    """A forward mailbox on Dovecot (IMAP) that deletes what it processed."""
    return mail_mailbox(
        org,
        None,
        mail_servers,
        mail_account,
        ProfileKind.IMAP_SMTP,
        owner_type=OwnerType.QUEUE,
        queue_name="Forward mailbox",
        incoming_method=IncomingMethod.FORWARD_MAILBOX,
        outgoing_method=OutgoingMethod.NONE,
        delete_processed=True,
    )


def test_a_processed_message_is_deleted_and_one_that_was_not_is_kept(
    imap_forward: Any, alice_box: Any, mail_servers: MailServers, mail_account: Account
) -> None:
    dovecot = mail_servers.dovecot
    kept = dovecot.deliver(mail_account, forwarded())
    dovecot.deliver(mail_account, forwarded(original(subject="Tracked")))
    dovecot.deliver(mail_account, forwarded(original(), by="stranger@elsewhere.example"))
    transport = IMAPTransport.for_mailbox(imap_forward)
    try:
        batch = transport.fetch("inbox", "", 10)
        emails = [process_forwarded(imap_forward, message, transport) for message in batch.messages]
    finally:
        transport.close()
    assert [e.subject if e else None for e in emails] == [None, "Tracked", None]
    assert sorted(ignored(imap_forward)) == [
        NO_ATTACHMENT,
        "no mailbox in this organization for stranger@elsewhere.example",
    ]
    assert kept in dovecot.flags(mail_account) and len(dovecot.flags(mail_account)) == 2


def test_without_delete_processed_the_forward_mailbox_keeps_its_messages(
    imap_forward: Any, alice_box: Any, mail_servers: MailServers, mail_account: Account
) -> None:
    imap_forward.delete_processed = False
    imap_forward.save()
    uid = mail_servers.dovecot.deliver(mail_account, forwarded(original()))
    transport = IMAPTransport.for_mailbox(imap_forward)
    try:
        [message] = transport.fetch("inbox", "", 10).messages
        assert process_forwarded(imap_forward, message, transport) is not None
    finally:
        transport.close()
    assert list(mail_servers.dovecot.flags(mail_account)) == [uid]


# Over EWS (ewsim) -------------------------------------------------------------------------------


def test_over_ews_a_forwarded_message_is_tracked_and_deleted_from_the_forward_mailbox(
    org: Any, alice_box: Any, alice: Any
) -> None:
    with running_simulator() as sim:
        sim.control.create_mailbox("svc@example.com", "svc-pw", can_impersonate=True)
        sim.control.create_mailbox(FORWARD, "fwd-pw")
        profile = make_profile(org, "Simulator", ews_url=sim.ews_url, username="svc@example.com", password="svc-pw")
        box = make_mailbox(
            org,
            address=FORWARD,
            profile=profile,
            owner_type=OwnerType.QUEUE,
            queue_name="Forward mailbox",
            incoming_method=IncomingMethod.FORWARD_MAILBOX,
            outgoing_method=OutgoingMethod.NONE,
            delete_processed=True,
        )
        message = original(subject="Over EWS")
        sim.control.add_mime(FORWARD, "inbox", forwarded(message))
        transport = EwsIncoming(box)
        try:
            [fetched_item] = transport.fetch("inbox", "", 10).messages
            email = process_forwarded(box, fetched_item, transport)
        finally:
            transport.close()
        assert email is not None and (email.message_id, email.owner) == (message["Message-ID"], alice)
        assert sim.control.items(FORWARD, "inbox") == []
