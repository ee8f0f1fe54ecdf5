"""Incoming tracking: the rules, the correlation methods, one email per Message-ID, queues, folders."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, close_old_connections, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from crm.models import (
    Account,
    Contact,
    Email,
    EmailDirection,
    EmailReceipt,
    EmailRecipient,
    EmailStatus,
    IgnoredMessage,
    Lead,
    QueueItem,
    TrackedBy,
    TrackedFolder,
)
from mailboxes.models import Membership, OwnerType, Role, TrackingRule
from syncjobs.mail.tracking import Book, Tracker, read_book, track, track_conversation
from syncjobs.mail.transport import Fetched
from tests.conftest import make_mailbox, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def mime(
    sender: str = "ann@customer.example",
    to: str = "alice@example.com",
    subject: str = "Hello",
    message_id: str | None = None,
    headers: str = "",
    body: str = "Hi there",
) -> bytes:
    message_id = message_id or f"<{os.urandom(6).hex()}@customer.example>"
    return (
        f"From: Ann <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def fetched(raw: bytes, source_id: str | None = None, **kwargs: Any) -> Fetched:
    return Fetched(source_id=source_id or os.urandom(8).hex(), raw=raw, received_at=timezone.now(), **kwargs)


@pytest.fixture
def box(org: Any, alice: Any, profile: Any) -> Any:
    return make_mailbox(org, alice, "alice@example.com", profile, tracking_rule=TrackingRule.ALL)


@pytest.fixture
def ann(org: Any, admin: Any) -> Contact:
    return Contact.objects.create(
        organization=org, owner=admin, first_name="Ann", last_name="Lee", email="Ann@Customer.example"
    )


def crm_email(org: Any, owner: Any, **fields: Any) -> Email:
    values = {"direction": EmailDirection.OUTGOING, "status": EmailStatus.SENT, "subject": "Offer", **fields}
    return Email.objects.create(organization=org, owner=owner, **values)


# Tracking rules ------------------------------------------------------------------------------


def test_rule_all_tracks_every_message(box: Any) -> None:
    email = track(box, fetched(mime(subject="Anything")))
    assert email is not None
    assert email.tracked_by == TrackedBy.RULE_ALL
    assert email.owner == box.user and email.mailbox == box
    assert (email.direction, email.status, email.subject) == (EmailDirection.INCOMING, EmailStatus.RECEIVED, "Anything")


def test_rule_none_tracks_nothing(box: Any) -> None:
    box.tracking_rule = TrackingRule.NONE
    assert track(box, fetched(mime())) is None
    assert not Email.objects.exists()


def test_rule_replies_tracks_only_correlated(box: Any, org: Any, admin: Any) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    assert track(box, fetched(mime())) is None
    sent = crm_email(org, admin, message_id="<offer@crm.example>")
    reply = track(box, fetched(mime(headers="In-Reply-To: <offer@crm.example>\r\n")))
    assert reply is not None and reply.tracked_by == TrackedBy.IN_REPLY_TO
    assert Email.objects.count() == 2 and sent.pk != reply.pk


def test_rule_crm_records_tracks_mail_from_contacts_leads_and_accounts(
    box: Any, org: Any, admin: Any, ann: Contact
) -> None:
    box.tracking_rule = TrackingRule.FROM_CRM_RECORDS
    Lead.objects.create(organization=org, owner=admin, last_name="Lead", email="lead@prospect.example")
    Account.objects.create(organization=org, owner=admin, name="Big", email="info@big.example")
    assert track(box, fetched(mime(sender="stranger@nowhere.example"))) is None
    assert track(box, fetched(mime(sender="bob@example.com"))) is None  # a member, not a CRM record
    for sender in ("ann@customer.example", "LEAD@prospect.example", "info@big.example"):
        email = track(box, fetched(mime(sender=sender)))
        assert email is not None and email.tracked_by == TrackedBy.RULE_CRM_RECORDS, sender


def test_rule_email_enabled_adds_members_and_queues(box: Any, org: Any, admin: Any, bob: Any, profile: Any) -> None:
    box.tracking_rule = TrackingRule.FROM_EMAIL_ENABLED
    make_mailbox(org, None, "support@example.com", profile, owner_type=OwnerType.QUEUE, queue_name="Support")
    assert track(box, fetched(mime(sender="stranger@nowhere.example"))) is None
    for sender in ("bob@example.com", "support@example.com"):
        email = track(box, fetched(mime(sender=sender)))
        assert email is not None and email.tracked_by == TrackedBy.RULE_EMAIL_ENABLED, sender


def test_tracked_category_is_tracked_whatever_the_rule(box: Any, org: Any) -> None:
    box.tracking_rule = TrackingRule.NONE
    email = track(box, fetched(mime(), categories=("Red", "tracked to crm")))
    assert email is not None and email.tracked_by == TrackedBy.CATEGORY


def test_messages_received_before_the_mark_are_not_tracked(box: Any) -> None:
    box.process_email_after = timezone.now()
    old = Fetched(source_id="old", raw=mime(), received_at=timezone.now() - timedelta(days=1))
    assert track(box, old) is None
    assert track(box, fetched(mime())) is not None


def test_profile_mark_applies_when_the_mailbox_has_none(box: Any, profile: Any) -> None:
    profile.process_email_after = timezone.now()
    old = Fetched(source_id="old", raw=mime(), received_at=timezone.now() - timedelta(hours=1))
    assert track(box, old) is None


def test_the_mark_is_the_mailboxs_own_else_its_profiles(box: Any, profile: Any) -> None:
    assert box.email_received_after() is None
    profile.process_email_after = timezone.now() - timedelta(days=2)
    assert box.email_received_after() == profile.process_email_after
    box.process_email_after = timezone.now() - timedelta(days=1)
    assert box.email_received_after() == box.process_email_after


# Correlation ---------------------------------------------------------------------------------


def test_in_reply_to_correlates_and_regarding_follows(box: Any, org: Any, admin: Any, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    crm_email(org, admin, message_id="<offer@crm.example>", regarding_contact=ann)
    email = track(box, fetched(mime(headers="In-Reply-To: <offer@crm.example>\r\n")))
    assert email.tracked_by == TrackedBy.IN_REPLY_TO and email.regarding_contact == ann


def test_references_correlate_when_in_reply_to_is_unknown(box: Any, org: Any, admin: Any, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    crm_email(org, admin, message_id="<first@crm.example>", regarding_contact=ann)
    headers = "In-Reply-To: <unknown@x>\r\nReferences: <first@crm.example> <unknown@x>\r\n"
    email = track(box, fetched(mime(headers=headers)))
    assert email.tracked_by == TrackedBy.IN_REPLY_TO and email.regarding_contact == ann


def test_tracking_token_correlates(box: Any, org: Any, admin: Any, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    crm_email(org, admin, message_id="<t@crm.example>", tracking_number=4711, regarding_contact=ann)
    email = track(box, fetched(mime(subject="RE: Offer CRM:0004711")))
    assert email.tracked_by == TrackedBy.TRACKING_TOKEN and email.regarding_contact == ann


def test_the_token_is_read_where_it_stands_after_letters_that_grow_in_upper_case(
    box: Any, org: Any, admin: Any, ann: Contact
) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    crm_email(org, admin, message_id="<t@crm.example>", tracking_number=12345, regarding_contact=ann)
    crm_email(org, admin, message_id="<u@crm.example>", tracking_number=2345)
    email = track(box, fetched(mime(subject="Re: Maßnahme CRM:12345")))  # "ß" is "SS" in upper case
    assert email.tracked_by == TrackedBy.TRACKING_TOKEN and email.regarding_contact == ann


def test_a_token_of_other_digits_is_no_token_and_the_page_goes_on(box: Any, org: Any, admin: Any) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    crm_email(org, admin, message_id="<t@crm.example>", tracking_number=2)
    subjects = ["Re: CRM:\u00b2", "Re: CRM:\u0662", "CRM:2"]  # superscript two, Arabic-Indic two, two
    outcomes = Tracker(box).track_batch([fetched(mime(subject=s)) for s in subjects])
    assert [o.status for o in outcomes] == ["skipped", "skipped", "tracked"]


def test_in_reply_to_wins_over_the_token(box: Any, org: Any, admin: Any, ann: Contact) -> None:
    crm_email(org, admin, message_id="<a@crm.example>", regarding_contact=ann)
    crm_email(org, admin, message_id="<b@crm.example>", tracking_number=5)
    email = track(box, fetched(mime(subject="RE: CRM:5", headers="In-Reply-To: <a@crm.example>\r\n")))
    assert email.tracked_by == TrackedBy.IN_REPLY_TO and email.regarding_contact == ann


def test_conversation_index_correlates_by_its_first_22_bytes(box: Any, org: Any, admin: Any, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    thread = bytes(range(1, 23))
    crm_email(org, admin, message_id="<x@crm.example>", conversation_id=thread.hex(), regarding_contact=ann)
    email = track(box, fetched(mime(), conversation_index=thread + b"\x00\x01\x02\x03\x04"))
    assert email.tracked_by == TrackedBy.CONVERSATION_INDEX and email.regarding_contact == ann


def test_a_deleted_email_does_not_hide_its_thread(box: Any, org: Any, admin: Any, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    thread = os.urandom(22)
    crm_email(org, admin, message_id="<old@crm.example>", conversation_id=thread.hex()).delete()
    crm_email(org, admin, message_id="<new@crm.example>", conversation_id=thread.hex(), regarding_contact=ann)
    email = track(box, fetched(mime(), conversation_index=thread + os.urandom(5)))
    assert email is not None and email.tracked_by == TrackedBy.CONVERSATION_INDEX and email.regarding_contact == ann


def test_a_deleted_email_is_not_tracked_again(box: Any) -> None:
    raw = mime(message_id="<gone@x>")
    track(box, fetched(raw)).delete()
    assert track(box, fetched(raw)) is not None  # its receipt: the message is known
    assert Email.all_objects.count() == 1 and not Email.objects.exists()


def test_thread_index_header_correlates_like_the_conversation_index(box: Any, org: Any, admin: Any) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    thread = os.urandom(22)
    crm_email(org, admin, message_id="<y@crm.example>", conversation_id=thread.hex())
    header = f"Thread-Index: {base64.b64encode(thread + os.urandom(5)).decode()}\r\n"
    email = track(box, fetched(mime(headers=header)))
    assert email is not None and email.tracked_by == TrackedBy.CONVERSATION_INDEX


def test_conversation_id_correlates_without_an_index(box: Any, org: Any, admin: Any) -> None:
    box.tracking_rule = TrackingRule.REPLIES
    crm_email(org, admin, message_id="<z@crm.example>", conversation_id="AAQkADA=")
    email = track(box, fetched(mime(), conversation_id="AAQkADA="))
    assert email is not None and email.tracked_by == TrackedBy.CONVERSATION_INDEX


def test_rule_none_ignores_correlation(box: Any, org: Any, admin: Any) -> None:
    box.tracking_rule = TrackingRule.NONE
    crm_email(org, admin, message_id="<offer@crm.example>")
    assert track(box, fetched(mime(headers="In-Reply-To: <offer@crm.example>\r\n"))) is None


# One email per Message-ID ----------------------------------------------------------------------


def three_mailboxes(org: Any, profile: Any, system: Any) -> list[Any]:
    boxes = []
    for name in ("amy", "ben", "cat"):
        user = make_user(name)
        Membership.add(system, user, org, Role.USER)
        boxes.append(make_mailbox(org, user, f"{name}@example.com", profile, tracking_rule=TrackingRule.ALL))
    return boxes


def test_one_message_in_three_mailboxes_is_one_email_with_three_receipts(org: Any, profile: Any, system: Any) -> None:
    boxes = three_mailboxes(org, profile, system)
    raw = mime(to="amy@example.com, ben@example.com", headers="Cc: cat@example.com\r\n", message_id="<once@x>")
    emails = {track(b, fetched(raw)).pk for b in boxes}
    assert len(emails) == 1 and Email.objects.count() == 1
    assert EmailReceipt.objects.count() == 3
    users = set(EmailRecipient.objects.exclude(user=None).values_list("user__username", flat=True))
    assert users == {"amy", "ben", "cat"}


def test_a_bcc_mailbox_adds_its_recipient(org: Any, profile: Any, system: Any) -> None:
    amy, ben, _ = three_mailboxes(org, profile, system)
    raw = mime(to="amy@example.com", message_id="<bcc@x>")
    track(amy, fetched(raw))
    track(ben, fetched(raw))
    assert EmailRecipient.objects.filter(address="ben@example.com", user__username="ben").exists()


def test_concurrent_mailboxes_make_one_email(org: Any, profile: Any, system: Any) -> None:
    boxes = three_mailboxes(org, profile, system)
    raw = mime(message_id="<race@x>")
    barrier = threading.Barrier(len(boxes))
    errors: list[BaseException] = []

    def work(box: Any) -> None:
        try:
            barrier.wait()
            track(box, fetched(raw))
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=work, args=(b,)) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Email.objects.count() == 1 and EmailReceipt.objects.count() == 3


def test_moved_back_into_the_inbox_is_not_tracked_again(box: Any) -> None:
    raw = mime(message_id="<moved@x>")
    first = track(box, fetched(raw, source_id="id-1"))
    again = track(box, fetched(raw, source_id="id-2"))
    assert again.pk == first.pk and Email.objects.count() == 1
    assert list(EmailReceipt.objects.values_list("source_id", flat=True)) == ["id-2"]


# Recipients, queues, folders ---------------------------------------------------------------------


def test_recipients_resolve_to_records_and_users(box: Any, org: Any, admin: Any, ann: Contact, bob: Any) -> None:
    lead = Lead.objects.create(organization=org, owner=admin, last_name="L", email="lee@prospect.example")
    email = track(box, fetched(mime(to="alice@example.com, BOB@example.com", headers="Cc: lee@prospect.example\r\n")))
    found = {(r.kind, r.address): r.record for r in email.recipients.all()}
    assert found[("from", "ann@customer.example")] == ann
    assert found[("to", "bob@example.com")] == bob
    assert found[("to", "alice@example.com")] == box.user
    assert found[("cc", "lee@prospect.example")] == lead


def test_the_address_book_resolves_records_members_and_queues_case_insensitively(
    org: Any, admin: Any, ann: Contact, bob: Any, profile: Any
) -> None:
    lead = Lead.objects.create(organization=org, owner=admin, last_name="L", email="Lee@Prospect.example")
    account = Account.objects.create(organization=org, owner=admin, name="Customer", email="info@customer.example")
    make_mailbox(org, None, "Support@example.com", profile, owner_type=OwnerType.QUEUE, queue_name="Support")
    wanted = ["ANN@customer.example", "lee@prospect.example", "info@customer.example", "Bob@Example.com"]
    book = read_book(org, [*wanted, "support@example.com", "nobody@elsewhere.example", ""])
    assert (book.contacts, book.leads, book.accounts) == (
        {"ann@customer.example": ann.pk},
        {"lee@prospect.example": lead.pk},
        {"info@customer.example": account.pk},
    )
    assert (book.users, book.queues) == ({"bob@example.com": bob.pk}, {"support@example.com"})
    email = crm_email(org, admin)
    row = book.recipient(email, "to", "lee@prospect.example", "Lee")
    assert (row.record, row.address, row.name) == (lead, "lee@prospect.example", "Lee")
    assert read_book(org, []) == Book()


def test_queue_mailbox_makes_a_queue_item_owned_by_the_first_administrator(org: Any, profile: Any, admin: Any) -> None:
    queue = make_mailbox(
        org,
        None,
        "support@example.com",
        profile,
        owner_type=OwnerType.QUEUE,
        queue_name="Support",
        tracking_rule=TrackingRule.REPLIES,
    )
    email = track(queue, fetched(mime(to="support@example.com")))
    assert email.tracked_by == TrackedBy.QUEUE and email.owner == admin
    assert QueueItem.objects.get().email == email


def test_tracked_folder_sets_regarding(box: Any, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.NONE
    TrackedFolder.objects.create(mailbox=box, folder_name="Ann", folder_id="FOLDER-1", regarding_contact=ann)
    email = track(box, fetched(mime(), folder="FOLDER-1"))
    assert email.tracked_by == TrackedBy.FOLDER and email.regarding_contact == ann


# Bad input -------------------------------------------------------------------------------------


def test_bad_messages_are_recorded_and_do_not_block_the_others(box: Any, settings: Any) -> None:
    settings.EMAIL_MAX_BYTES = 2000
    batch = [
        fetched(b"\x00\x01\x02 not a message", source_id="garbage"),
        fetched(mime(body="x" * 3000), source_id="huge"),
        fetched(mime(subject="Fine"), source_id="fine"),
        fetched(b"", source_id="empty"),
    ]
    outcomes = Tracker(box).track_batch(batch)
    assert [o.status for o in outcomes] == ["ignored", "ignored", "tracked", "ignored"]
    reasons = dict(IgnoredMessage.objects.values_list("source_id", "reason"))
    assert "malformed" in reasons["garbage"] and "limit" in reasons["huge"] and "empty" in reasons["empty"]
    Tracker(box).track_batch(batch)  # a replay records nothing twice
    assert IgnoredMessage.objects.count() == 3 and Email.objects.count() == 1


def test_wrong_charset_and_scripts_are_repaired_and_noted(box: Any) -> None:
    raw = (
        b"From: a@b.example\r\nTo: alice@example.com\r\nSubject: x\r\nMessage-ID: <cs@x>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"caf\xe9\r\n--b\r\nContent-Type: text/html; charset=klingon\r\n\r\n"
        b"<p onclick='steal()'>Hi<script>alert(1)</script><img src=x onerror=alert(2)></p>\r\n--b--\r\n"
    )
    email = track(box, fetched(raw))
    assert "\ufffd" in email.body_text
    assert "script" not in email.body_html and "onclick" not in email.body_html and "onerror" not in email.body_html
    assert "replaced" in email.status_reason and "klingon" in email.status_reason and "Scripts" in email.status_reason


def test_a_message_without_message_id_is_tracked_once(box: Any) -> None:
    raw = b"From: a@b.example\r\nTo: alice@example.com\r\nSubject: no id\r\n\r\nbody\r\n"
    first = track(box, fetched(raw, source_id="1"))
    assert first.message_id.endswith("@crmsync.invalid>")
    assert track(box, fetched(raw, source_id="1")).pk == first.pk


def test_a_long_non_ascii_message_id_is_replaced_by_one_made_from_the_content(box: Any) -> None:
    # 990 different CJK characters, about 2,974 bytes: more than an index entry may hold.
    long_id = "<" + "".join(chr(0x4E00 + i * 7919 % 20000) for i in range(990)) + "@x>"
    raw = mime(message_id=long_id, subject="Long id")
    first = track(box, fetched(raw, source_id="1"))
    assert first is not None and first.message_id.endswith("@crmsync.invalid>")
    assert "Message-ID" in first.status_reason
    assert track(box, fetched(raw, source_id="1")).pk == first.pk  # a replay finds the same email
    plain = track(box, fetched(mime(message_id="<" + "a" * 300 + "@x>")))  # ASCII, but too long
    assert plain.message_id.endswith("@crmsync.invalid>") and Email.objects.count() == 2


@contextmanager
def refusing(condition: str = "program_limit_exceeded") -> Iterator[None]:
    """A database that refuses to store emails with the subject "Refused" (a real database error;
    on PostgreSQL with the given condition, on SQLite as a constraint)."""
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute(
                "CREATE FUNCTION refuse_email() RETURNS trigger AS $$ BEGIN IF NEW.subject = 'Refused' THEN "
                f"RAISE EXCEPTION 'index row too large' USING ERRCODE = '{condition}'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_email BEFORE INSERT ON crm_email FOR EACH ROW EXECUTE FUNCTION refuse_email()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_email BEFORE INSERT ON crm_email WHEN NEW.subject = 'Refused' "
                "BEGIN SELECT RAISE(ABORT, 'index row too large'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_email ON crm_email" if postgres else "DROP TRIGGER refuse_email")
            if postgres:
                cursor.execute("DROP FUNCTION refuse_email()")


def test_a_message_the_database_refuses_is_recorded_and_the_page_goes_on(box: Any) -> None:
    batch = [fetched(mime(subject="Before")), fetched(mime(subject="Refused"), source_id="bad"), fetched(mime())]
    with refusing():
        outcomes = Tracker(box).track_batch(batch)
    assert [o.status for o in outcomes] == ["tracked", "ignored", "tracked"]
    ignored = IgnoredMessage.objects.get()
    assert ignored.source_id == "bad" and "index row too large" in ignored.reason and ignored.subject == "Refused"
    assert Email.objects.count() == 2


def test_a_database_error_that_passes_fails_the_page_and_ignores_nothing(box: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite raises no deadlock")
    with refusing("deadlock_detected"), pytest.raises(OperationalError):
        Tracker(box).track_batch([fetched(mime(subject="Refused"))])
    assert not IgnoredMessage.objects.exists()


# Queries ---------------------------------------------------------------------------------------


def test_queries_per_page_are_bounded(box: Any, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.FROM_CRM_RECORDS

    def page(n: int, tracked: int) -> int:
        batch = [
            fetched(mime(sender="ann@customer.example" if i < tracked else f"x{i}@nowhere.example")) for i in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            Tracker(box).track_batch(batch)
        return len(ctx.captured_queries)

    untracked_10, untracked_40 = page(10, 0), page(40, 0)
    assert untracked_10 == untracked_40  # nothing per untracked message
    tracked_10, tracked_20 = page(10, 10), page(20, 20)
    per_message = (tracked_20 - tracked_10) / 10
    assert per_message == int(per_message) and per_message <= 8
    assert page(30, 30) - tracked_20 == (tracked_20 - tracked_10)


# The track action ----------------------------------------------------------------------------------


def test_track_conversation_spreads_regarding_and_is_audited(
    box: Any, org: Any, admin: Any, ann: Contact, system: Any
) -> None:
    first = track(box, fetched(mime(message_id="<c1@x>")))
    second = track(box, fetched(mime(message_id="<c2@x>", headers="In-Reply-To: <c1@x>\r\n")))
    first.regarding_contact = ann
    first.save()
    assert track_conversation(first, system) == 1
    second.refresh_from_db()
    assert second.regarding_contact == ann
    assert AuditEvent.objects.filter(action="email.conversation_tracked", object_id=str(first.pk)).exists()
