"""Outgoing email: each pending CRM email is sent once, through a real EWS server (ewsim).

A crash between sending and recording, two workers at once, a busy server, a refused message,
refused credentials: none sends an email twice or loses one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import Contact, Email, EmailDirection, EmailReceipt, EmailStatus, TrackedBy
from ewsim.testing import RunningSimulator, running_simulator
from mailboxes.models import ActMethod, Channel, CredentialsSource, Mailbox, ProfileKind, TestStatus
from syncjobs.engine import MAX_TRIES, run_sync
from syncjobs.errors import PermanentError
from syncjobs.jobs import enqueue_sync
from syncjobs.mail import channel, outgoing
from syncjobs.mail.ews_outgoing import EwsOutgoing
from syncjobs.mail.smtp import SMTPTransport
from syncjobs.mail.transport import CRM_ID_HEADER
from syncjobs.models import HEARTBEAT_STALE, ErrorKind, RunStatus, SyncRun, Trigger
from syncjobs.scheduler import tick
from tests.conftest import make_mailbox, make_profile
from tests.mail.servers import HOST, Account, MailServers

pytestmark = pytest.mark.django_db(transaction=True)

ALICE = "alice@example.com"
BOB = "bob@example.com"
SERVICE = "svc@example.com"


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator: RunningSimulator) -> Iterator[RunningSimulator]:
    simulator.control.reset()
    simulator.control.create_mailbox(SERVICE, "svc-pw", can_impersonate=True)
    simulator.control.create_mailbox(ALICE, "alice-pw")
    simulator.control.create_mailbox(BOB, "bob-pw")
    yield simulator
    simulator.control.clear_faults()


@pytest.fixture
def mailbox(org: Any, alice: Any, sim: RunningSimulator) -> Mailbox:
    """Alice's mailbox on the simulator, approved, tested and enabled for outgoing email."""
    profile = make_profile(org, "Simulator", ews_url=sim.ews_url, username=SERVICE, password="svc-pw")
    mailbox = make_mailbox(org, alice, ALICE, profile)
    mailbox.approval_status = "approved"
    mailbox.test_outgoing = mailbox.test_overall = TestStatus.SUCCESS
    mailbox.enabled_outgoing = True
    mailbox.save()
    return mailbox


@pytest.fixture
def transport(mailbox: Mailbox) -> Iterator[EwsOutgoing]:
    transport = EwsOutgoing(mailbox)
    yield transport
    transport.close()


def start_run(mailbox: Mailbox) -> SyncRun:
    """A running outgoing run of the mailbox, the previous one finished (as the engine claims one)."""
    SyncRun.objects.filter(mailbox=mailbox, channel=Channel.OUTGOING, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, finished_at=timezone.now()
    )
    now = timezone.now()
    return SyncRun.objects.create(
        mailbox=mailbox, channel=Channel.OUTGOING, status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
    )


def send(mailbox: Mailbox, transport: Any) -> dict[str, int]:
    return outgoing.send_pending(start_run(mailbox), mailbox, transport)


def pending(mailbox: Mailbox, **fields: Any) -> Email:
    values = {
        "status": EmailStatus.PENDING_SEND,
        "subject": "Your quote",
        "to": ["Bob <bob@example.com>"],
        "body_text": "Here it is.",
        **fields,
    }
    return Email.objects.create(
        organization=mailbox.organization,
        owner=mailbox.user,
        mailbox=mailbox,
        direction=EmailDirection.OUTGOING,
        **values,
    )


def sent_items(sim: RunningSimulator) -> list[dict]:
    return sim.control.items(ALICE, "sentitems")


def stamps(sim: RunningSimulator) -> list[str]:
    return [p["value"] for item in sent_items(sim) for p in item["extended_properties"]]


class Crash(BaseException):
    """The worker dies: nothing after this point runs (not an error the code could catch)."""


class CrashAfterSend:
    """The real transport, but the worker dies (or the send ends in an error of no known kind)
    right after the server took the message."""

    def __init__(self, real: Any, error: type[BaseException] = Crash) -> None:
        self.real = real
        self.error = error

    def send(self, message: Any, crm_id: str) -> None:
        self.real.send(message, crm_id)
        raise self.error("the connection dropped before the answer")

    def was_sent(self, crm_id: str, message_id: str) -> bool | None:
        return self.real.was_sent(crm_id, message_id)

    def close(self) -> None:
        self.real.close()


class CrashBeforeSend(CrashAfterSend):
    """The worker dies after claiming the email, before anything reached the server."""

    def send(self, message: Any, crm_id: str) -> None:
        raise Crash


# Sending --------------------------------------------------------------------------------------


def test_a_pending_email_is_sent_once_with_the_token_and_the_crm_id(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    email = pending(mailbox)
    assert send(mailbox, transport) == {"sent": 1, "retry": 0, "failed": 0, "unsure": 0}
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.sent_at is not None and email.status_reason == ""
    assert email.tracking_number and email.message_id.endswith("@example.com>")
    assert email.send_attempts == 1 and email.tracked_by == TrackedBy.SENT_FROM_CRM
    [item] = sent_items(sim)
    assert item["subject"] == f"Your quote CRM:{email.tracking_number}"
    assert item["message_id"] == email.message_id
    assert stamps(sim) == [str(email.pk)]
    assert [i["subject"] for i in sim.control.items(BOB, "inbox")] == [item["subject"]]
    assert send(mailbox, transport)["sent"] == 0
    assert len(sent_items(sim)) == 1


def test_a_sent_email_records_its_receipt_and_recipients_resolved_to_records(
    mailbox: Mailbox, transport: EwsOutgoing, alice: Any, bob: Any, sim: RunningSimulator
) -> None:
    org = mailbox.organization
    carol = Contact.objects.create(organization=org, owner=alice, last_name="Client", email="Carol@Client.example")
    email = pending(mailbox, to=[{"address": "carol@client.example", "name": "Carol"}], cc=[BOB])
    send(mailbox, transport)
    recipients = {(r.kind, r.address): r.record for r in email.recipients.all()}
    assert recipients == {("from", ALICE): alice, ("to", "carol@client.example"): carol, ("cc", BOB): bob}
    receipt = EmailReceipt.objects.get(email=email)
    assert (receipt.mailbox, receipt.folder) == (mailbox, "sentitems")


def test_only_the_mailboxs_own_due_pending_emails_are_sent(
    mailbox: Mailbox, transport: EwsOutgoing, org: Any, bob: Any, sim: RunningSimulator
) -> None:
    draft = pending(mailbox, status=EmailStatus.DRAFT)
    later = pending(mailbox, next_send_at=timezone.now() + timedelta(minutes=5))
    deleted = pending(mailbox)
    deleted.delete()
    bobs = make_mailbox(org, bob, BOB, mailbox.profile)
    other = pending(bobs)
    due = pending(mailbox, next_send_at=timezone.now() - timedelta(seconds=1))
    assert send(mailbox, transport)["sent"] == 1
    assert stamps(sim) == [str(due.pk)]
    statuses = dict(Email.all_objects.values_list("pk", "status"))
    assert statuses[draft.pk] == EmailStatus.DRAFT
    assert statuses[later.pk] == statuses[deleted.pk] == statuses[other.pk] == EmailStatus.PENDING_SEND


def test_a_reply_carries_in_reply_to_references_and_its_own_token(mailbox: Mailbox) -> None:
    email = pending(
        mailbox,
        subject="RE: Your quote CRM:1001",
        in_reply_to="<parent@client.example>",
        references="<root@client.example>\n <parent@client.example>",
        body_html="<p>Thanks</p>",
        message_id="<reply@example.com>",
        tracking_number=4242,
    )
    message = outgoing.build_message(email, mailbox)
    assert message["Subject"] == "RE: Your quote CRM:4242"
    assert message["In-Reply-To"] == "<parent@client.example>"
    assert message["References"] == "<root@client.example> <parent@client.example>"
    assert message["From"] == "Alice <alice@example.com>"
    assert message[CRM_ID_HEADER] == str(email.pk)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed.get_body(("plain",)).get_content().strip() == "Here it is."
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Thanks</p>"


def test_tracking_numbers_are_unique_and_kept(mailbox: Mailbox) -> None:
    first, second = pending(mailbox), pending(mailbox, tracking_number=5000)
    assert outgoing.assign_tracking_number(first) == 5001
    assert outgoing.assign_tracking_number(first) == 5001
    assert outgoing.assign_tracking_number(second) == 5000


# Never twice ----------------------------------------------------------------------------------


def test_a_crash_after_sending_is_recorded_as_sent_by_the_next_run_without_sending_again(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    email = pending(mailbox)
    with pytest.raises(Crash):
        send(mailbox, CrashAfterSend(transport))
    email.refresh_from_db()
    assert email.status == EmailStatus.SENDING and len(sent_items(sim)) == 1
    assert send(mailbox, transport)["sent"] == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.sent_at is not None
    assert len(sent_items(sim)) == 1
    assert len(sim.control.items(BOB, "inbox")) == 1


def test_a_send_that_ends_in_an_unknown_error_is_checked_not_repeated(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    email = pending(mailbox)
    assert send(mailbox, CrashAfterSend(transport, RuntimeError))["unsure"] == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.SENDING and "without a clear outcome" in email.status_reason
    assert send(mailbox, transport)["sent"] == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.status_reason == ""
    assert stamps(sim) == [str(email.pk)]


def test_an_email_a_lost_run_left_sending_is_settled_by_a_scheduled_run_without_sending_again(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator, rq_queues: str
) -> None:
    email = pending(mailbox)
    with pytest.raises(Crash):
        send(mailbox, CrashAfterSend(transport))  # the worker dies after the server took the message
    # The scheduler finds the run lost and runs the channel again, but the server cannot say then
    # whether it sent the message.
    sim.control.add_fault("FindItem", error="ErrorServerBusy")
    assert tick(timezone.now() + HEARTBEAT_STALE + timedelta(seconds=1))["lost"] == 1
    retry = SyncRun.objects.get(mailbox=mailbox, channel=Channel.OUTGOING, status=RunStatus.QUEUED)
    assert run_sync(retry.pk).counts["unsure"] == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.SENDING
    # Nothing else is pending: the email left in "sending" alone makes the channel due.
    assert mailbox in channel.due(Channel.OUTGOING, timezone.now())
    tick()
    queued = SyncRun.objects.get(mailbox=mailbox, channel=Channel.OUTGOING, status=RunStatus.QUEUED)
    assert run_sync(queued.pk).counts["sent"] == 1
    email.refresh_from_db()
    assert (email.status, email.status_reason) == (EmailStatus.SENT, "")
    assert stamps(sim) == [str(email.pk)] and len(sim.control.items(BOB, "inbox")) == 1
    assert mailbox not in channel.due(Channel.OUTGOING, timezone.now())


def test_a_crash_before_the_server_took_the_message_is_sent_by_the_next_run(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    email = pending(mailbox)
    with pytest.raises(Crash):
        send(mailbox, CrashBeforeSend(transport))
    assert sent_items(sim) == []
    assert send(mailbox, transport)["sent"] == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.send_attempts == 2
    assert stamps(sim) == [str(email.pk)]


def test_an_email_another_worker_is_sending_is_left_to_it(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    run = start_run(mailbox)
    email = pending(mailbox)
    # Claimed after this run started: another worker's, still at work.
    Email.objects.filter(pk=email.pk).update(status=EmailStatus.SENDING, updated_at=timezone.now())
    assert outgoing.send_pending(run, mailbox, transport)["sent"] == 0
    email.refresh_from_db()
    assert email.status == EmailStatus.SENDING and sent_items(sim) == []


def test_two_workers_at_once_send_each_email_once(mailbox: Mailbox, sim: RunningSimulator) -> None:
    emails = [pending(mailbox, subject=f"Letter {i}") for i in range(6)]
    run = start_run(mailbox)
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        transport = EwsOutgoing(mailbox)
        try:
            start.wait()
            results.append(outgoing.send_pending(run, mailbox, transport))
        except BaseException as error:
            errors.append(error)
        finally:
            transport.close()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r["sent"] for r in results) == 6
    assert sorted(stamps(sim)) == sorted(str(e.pk) for e in emails)
    assert set(Email.objects.values_list("status", flat=True)) == {EmailStatus.SENT}
    assert set(Email.objects.values_list("send_attempts", flat=True)) == {1}


# Errors ---------------------------------------------------------------------------------------


def test_a_busy_server_is_retried_after_the_back_off_and_the_email_sent_once(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    email = pending(mailbox)
    sim.control.add_fault("CreateItem", error="ErrorServerBusy", back_off_ms=90_000)
    before = timezone.now()
    assert send(mailbox, transport) == {"sent": 0, "retry": 1, "failed": 0, "unsure": 0}
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND and "busy" in email.status_reason
    assert email.next_send_at >= before + timedelta(seconds=90)
    assert send(mailbox, transport)["sent"] == 0  # not due yet
    Email.objects.filter(pk=email.pk).update(next_send_at=timezone.now())  # the back-off has passed
    assert send(mailbox, transport)["sent"] == 1
    email.refresh_from_db()
    assert (email.status, email.send_attempts, email.status_reason) == (EmailStatus.SENT, 2, "")
    assert stamps(sim) == [str(email.pk)]


def test_after_the_last_try_a_transient_error_fails_the_email(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    email = pending(mailbox, send_attempts=MAX_TRIES - 1)
    sim.control.add_fault("CreateItem", http_status=503)
    assert send(mailbox, transport)["failed"] == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert email.status_reason.startswith(f"Gave up after {MAX_TRIES} attempts.")
    assert sent_items(sim) == []


def test_a_refused_message_fails_with_the_reason_and_the_others_are_sent(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    refused = pending(mailbox, subject="First")
    no_recipient = pending(mailbox, subject="Second", to=[])
    bad_address = pending(mailbox, subject="Third", to=["not an address"])
    half_address = pending(mailbox, subject="Third too", to=[{"address": "bob@", "name": "Bob"}])
    fine = pending(mailbox, subject="Fourth")
    sim.control.add_fault("CreateItem", error="ErrorInvalidRecipients")
    assert send(mailbox, transport) == {"sent": 1, "retry": 0, "failed": 4, "unsure": 0}
    reasons = dict(Email.objects.filter(status=EmailStatus.FAILED).values_list("pk", "status_reason"))
    assert "ErrorInvalidRecipients" in reasons[refused.pk]
    assert reasons[no_recipient.pk] == "The message could not be built: the email has no recipient"
    assert "not an address" in reasons[bad_address.pk]
    assert reasons[half_address.pk].startswith("The message could not be built: ")
    assert stamps(sim) == [str(fine.pk)]


def test_refused_credentials_stop_the_run_and_leave_the_email_pending(
    mailbox: Mailbox, transport: EwsOutgoing, sim: RunningSimulator
) -> None:
    email = pending(mailbox)
    mailbox.profile.password = "wrong"
    mailbox.profile.save()
    wrong = EwsOutgoing(Mailbox.objects.select_related("profile").get(pk=mailbox.pk))
    try:
        with pytest.raises(PermanentError, match="401"):
            send(mailbox, wrong)
    finally:
        wrong.close()
    email.refresh_from_db()
    assert (email.status, email.send_attempts) == (EmailStatus.PENDING_SEND, 0)
    assert "401" in email.status_reason


def test_an_outgoing_run_sends_and_refused_credentials_disable_the_channel(
    mailbox: Mailbox, sim: RunningSimulator, rq_queues: str
) -> None:
    first = pending(mailbox)
    run = run_sync(enqueue_sync(mailbox, Channel.OUTGOING, Trigger.MANUAL).pk)
    assert (run.status, run.counts["sent"]) == (RunStatus.SUCCEEDED, 1)
    assert stamps(sim) == [str(first.pk)]
    second = pending(mailbox)
    mailbox.profile.password = "wrong"
    mailbox.profile.save()
    run = run_sync(enqueue_sync(mailbox, Channel.OUTGOING, Trigger.MANUAL).pk)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.PERMANENT)
    mailbox.refresh_from_db()
    assert not mailbox.enabled_outgoing and "401" in mailbox.disabled_reason
    second.refresh_from_db()
    assert second.status == EmailStatus.PENDING_SEND and len(sent_items(sim)) == 1


# SMTP (POP3/SMTP and IMAP/SMTP profiles) ------------------------------------------------------


def mail_mailbox(org: Any, user: Any, servers: MailServers, account: Account, kind: str, **fields: Any) -> Mailbox:
    """A mailbox of the test servers' account, with its own credentials: SMTP, and Dovecot's IMAP or POP3."""
    profile = make_profile(
        org,
        kind,
        kind=kind,
        ews_url="",
        username="",
        password="",
        credentials_source=CredentialsSource.MAILBOX,
        incoming_host=HOST,
        incoming_port=servers.dovecot.imap_port if kind == ProfileKind.IMAP_SMTP else servers.dovecot.pop3_port,
        incoming_tls=False,
        outgoing_host=HOST,
        outgoing_port=servers.smtp.port,
        outgoing_tls=False,
    )
    mailbox = make_mailbox(
        org, user, account.address, profile, act_method=ActMethod.NONE, username=account.address, **fields
    )
    mailbox.password = account.password
    mailbox.save()
    return Mailbox.objects.select_related("profile", "organization", "user").get(pk=mailbox.pk)


def test_over_smtp_a_pending_email_is_sent_once_with_the_token_and_the_crm_id(
    org: Any, alice: Any, mail_servers: MailServers, mail_account: Account
) -> None:
    mailbox = mail_mailbox(org, alice, mail_servers, mail_account, ProfileKind.POP3_SMTP)
    email = pending(mailbox)
    transport = SMTPTransport.for_mailbox(mailbox)
    try:
        assert send(mailbox, transport)["sent"] == 1
        assert send(mailbox, transport)["sent"] == 0
    finally:
        transport.close()
    email.refresh_from_db()
    [received] = mail_servers.smtp.messages_for(mail_account)
    assert received.rcpt_tos == [BOB]
    message = message_from_bytes(received.content, policy=policy.default)
    assert message["Subject"] == f"Your quote CRM:{email.tracking_number}"
    assert (message["Message-ID"], message[CRM_ID_HEADER]) == (email.message_id, str(email.pk))


def test_over_smtp_an_interrupted_send_the_server_cannot_vouch_for_fails_and_is_not_sent_again(
    org: Any, alice: Any, mail_servers: MailServers, mail_account: Account
) -> None:
    mailbox = mail_mailbox(org, alice, mail_servers, mail_account, ProfileKind.POP3_SMTP)
    email = pending(mailbox)
    transport = SMTPTransport.for_mailbox(mailbox)
    try:
        with pytest.raises(Crash):
            send(mailbox, CrashAfterSend(transport))
        assert send(mailbox, transport) == {"sent": 0, "retry": 0, "failed": 1, "unsure": 0}
        assert send(mailbox, transport)["failed"] == 0
    finally:
        transport.close()
    email.refresh_from_db()
    assert (email.status, email.status_reason) == (EmailStatus.FAILED, outgoing.MAY_HAVE_BEEN_SENT)
    assert len(mail_servers.smtp.messages_for(mail_account)) == 1


def test_over_imap_smtp_an_interrupted_send_is_found_in_the_sent_folder_and_not_sent_again(
    org: Any, alice: Any, mail_servers: MailServers, mail_account: Account
) -> None:
    mailbox = mail_mailbox(org, alice, mail_servers, mail_account, ProfileKind.IMAP_SMTP)
    email = pending(mailbox)
    transport = SMTPTransport.for_mailbox(mailbox)
    try:
        with pytest.raises(Crash):
            send(mailbox, CrashAfterSend(transport))
        assert send(mailbox, transport)["sent"] == 1
    finally:
        transport.close()
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert len(mail_servers.smtp.messages_for(mail_account)) == 1
    assert len(mail_servers.dovecot.flags(mail_account, "Sent")) == 1
