"""Incoming email over EWS against the simulator: the run, its state, its errors and its schedule."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import django_rq
import pytest
from django.utils import timezone
from exchangelib import Folder
from rq import SimpleWorker
from rq.scheduler import RQScheduler

from crm.models import Contact, Email, EmailReceipt, IgnoredMessage, QueueItem, TrackedBy, TrackedFolder
from ewsim.testing import RunningSimulator, running_simulator
from mailboxes.models import Channel, Mailbox, OwnerType, TestStatus, TrackingRule
from syncjobs.engine import run_sync
from syncjobs.jobs import enqueue_sync, enqueue_test
from syncjobs.mail import channel
from syncjobs.mail.ews import EwsIncoming
from syncjobs.mail.tracking import Tracker
from syncjobs.models import ErrorKind, FolderState, RunStatus, SyncRun, Trigger
from syncjobs.scheduler import tick
from syncjobs.testenable import run_test
from tests.conftest import make_mailbox, make_profile

pytestmark = pytest.mark.django_db(transaction=True)

SERVICE, ALICE = "svc@example.com", "alice@example.com"


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator: RunningSimulator, rq_queues: str) -> Iterator[RunningSimulator]:
    simulator.control.reset()
    simulator.control.create_mailbox(SERVICE, "svc-pw", can_impersonate=True)
    for address in (ALICE, "amy@example.com", "ben@example.com", "support@example.com"):
        simulator.control.create_mailbox(address, "pw")
    yield simulator
    simulator.control.clear_faults()


@pytest.fixture
def ews_profile(org: Any, sim: RunningSimulator) -> Any:
    return make_profile(org, "Simulator", ews_url=sim.ews_url, username=SERVICE, password="svc-pw")


def ready(mailbox: Mailbox) -> Mailbox:
    mailbox.approval_status = "approved"
    mailbox.test_incoming = mailbox.test_overall = TestStatus.SUCCESS
    mailbox.enabled_incoming = True
    mailbox.save()
    return mailbox


@pytest.fixture
def box(org: Any, alice: Any, ews_profile: Any) -> Mailbox:
    return ready(make_mailbox(org, alice, ALICE, ews_profile, tracking_rule=TrackingRule.FROM_CRM_RECORDS))


@pytest.fixture
def ann(org: Any, admin: Any) -> Contact:
    return Contact.objects.create(organization=org, owner=admin, last_name="Lee", email="ann@customer.example")


def raw(n: int | str, sender: str = "ann@customer.example", to: str = ALICE, headers: str = "") -> bytes:
    return (
        f"From: Ann <{sender}>\r\nTo: {to}\r\nSubject: Message {n}\r\nMessage-ID: <m{n}@customer.example>\r\n"
        f"{headers}\r\nHello {n}\r\n"
    ).encode()


def run(mailbox: Mailbox) -> SyncRun:
    queued = enqueue_sync(mailbox, Channel.INCOMING, Trigger.MANUAL)
    done = run_sync(queued.pk)
    assert done is not None, "not claimed"
    return done


def operations(sim: RunningSimulator) -> list[str]:
    return [r["operation"] for r in sim.control.requests()]


def test_a_message_from_a_contact_becomes_a_crm_email(sim: RunningSimulator, box: Mailbox, ann: Contact) -> None:
    sim.control.add_mime(ALICE, "inbox", raw(1))
    sim.control.add_mime(ALICE, "inbox", raw(2, sender="stranger@elsewhere.example"))
    done = run(box)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.counts == {"tracked": 1, "skipped": 1}
    email = Email.objects.get()
    assert (email.subject, email.tracked_by, email.owner) == ("Message 1", TrackedBy.RULE_CRM_RECORDS, box.user)
    assert email.recipients.get(kind="from").contact == ann
    assert len(email.conversation_id) == 44  # the thread: 22 bytes of the conversation index
    assert FolderState.objects.get(mailbox=box, folder="email:inbox").sync_state
    box.refresh_from_db()
    assert box.next_sync_at is None and box.last_success_at is None  # ACT's schedule is left alone


def test_a_run_with_nothing_new_sends_one_request(sim: RunningSimulator, box: Mailbox, ann: Contact) -> None:
    sim.control.add_mime(ALICE, "inbox", raw(1))
    run(box)
    sim.control.clear_requests()
    done = run(box)
    assert done.status == RunStatus.SUCCEEDED and done.counts == {}
    assert operations(sim) == ["SyncFolderItems"]


def test_a_reply_correlates_through_the_conversation(sim: RunningSimulator, box: Mailbox, ann: Contact) -> None:
    sim.control.add_mime(ALICE, "inbox", raw(1))
    run(box)
    first = Email.objects.get()
    first.regarding_contact = ann
    first.save()
    box.tracking_rule = TrackingRule.REPLIES
    box.save()
    # No In-Reply-To, no token: only the conversation (References' first id names the thread).
    sim.control.add_mime(ALICE, "inbox", raw(2, sender="x@y.example", headers="References: <m1@customer.example>\r\n"))
    run(box)
    reply = Email.objects.get(subject="Message 2")
    assert reply.tracked_by == TrackedBy.IN_REPLY_TO and reply.regarding_contact == ann
    # Neither In-Reply-To nor References: the Thread-Index (an Outlook reply's) names the thread.
    index = base64.b64encode(base64.b64decode(first.conversation_index) + b"\x00\x00\x00\x00\x01").decode()
    sim.control.add_mime(ALICE, "inbox", raw(3, sender="x@y.example", headers=f"Thread-Index: {index}\r\n"))
    run(box)
    third = Email.objects.get(subject="Message 3")
    assert third.tracked_by == TrackedBy.CONVERSATION_INDEX and third.regarding_contact == ann


def test_a_message_moved_back_into_the_inbox_is_not_tracked_again(
    sim: RunningSimulator, box: Mailbox, ann: Contact
) -> None:
    sim.control.add_mime(ALICE, "inbox", raw(1))
    run(box)
    backend = EwsIncoming(box)
    try:
        inbox = backend.account.inbox
        archive = Folder(parent=inbox, name="Archive")
        archive.save()
        [item] = list(inbox.all())
        item.move(archive)  # a new item id there, and another back in the Inbox
        [item] = list(archive.all())
        item.move(inbox)
    finally:
        backend.close()
    done = run(box)
    assert done.counts == {"existing": 1}
    assert Email.objects.count() == 1
    receipt = EmailReceipt.objects.get()
    assert receipt.source_id == sim.control.items(ALICE, "inbox")[0]["id"]


def test_a_crash_between_fetching_and_storing_loses_and_duplicates_nothing(
    sim: RunningSimulator, box: Mailbox, ann: Contact
) -> None:
    for n in range(6):
        sim.control.add_mime(ALICE, "inbox", raw(n))
    # A run fetches the page and stores half of it, then its worker dies: no state is kept.
    transport = EwsIncoming(box)
    try:
        batch = transport.fetch("inbox", "", 512)
    finally:
        transport.close()
    assert len(batch.messages) == 6
    Tracker(box).track_batch(batch.messages[:3])
    assert not FolderState.objects.filter(mailbox=box, folder="email:inbox").exclude(sync_state="").exists()
    done = run(box)  # the next run reads the page again
    assert done.counts == {"existing": 3, "tracked": 3}
    assert Email.objects.count() == 6 and EmailReceipt.objects.count() == 6


def test_a_server_failure_mid_run_keeps_the_state_and_the_next_run_finishes(
    sim: RunningSimulator, box: Mailbox, ann: Contact
) -> None:
    for n in range(3):
        sim.control.add_mime(ALICE, "inbox", raw(n))
    sim.control.add_fault("GetItem", error="ErrorServerBusy", back_off_ms=1000)
    failed = run(box)
    assert (failed.status, failed.error_kind) == (RunStatus.FAILED, ErrorKind.TRANSIENT)
    assert failed.counts["retry_in"] >= 1
    assert not Email.objects.exists()
    box.refresh_from_db()
    assert box.enabled_incoming
    done = run(box)
    assert done.counts == {"tracked": 3} and Email.objects.count() == 3


def test_one_message_in_three_mailboxes_is_one_email(
    sim: RunningSimulator, org: Any, ews_profile: Any, system: Any, admin: Any
) -> None:
    from mailboxes.models import Membership, Role
    from tests.conftest import make_user

    boxes = []
    for name in ("amy", "ben"):
        user = make_user(name)
        Membership.add(system, user, org, Role.USER)
        boxes.append(ready(make_mailbox(org, user, f"{name}@example.com", ews_profile, tracking_rule=TrackingRule.ALL)))
    boxes.append(
        ready(
            make_mailbox(
                org,
                None,
                "support@example.com",
                ews_profile,
                owner_type=OwnerType.QUEUE,
                queue_name="Support",
                tracking_rule=TrackingRule.ALL,
            )
        )
    )
    message = raw("all", sender="c@d.example", to="amy@example.com, ben@example.com, support@example.com")
    for address in ("amy@example.com", "ben@example.com", "support@example.com"):
        sim.control.add_mime(address, "inbox", message)
    for mailbox in boxes:
        assert run(mailbox).status == RunStatus.SUCCEEDED
    email = Email.objects.get()
    assert EmailReceipt.objects.filter(email=email).count() == 3
    assert QueueItem.objects.get().queue == boxes[2]


def test_the_tracked_category_is_tracked_under_rule_none(sim: RunningSimulator, box: Mailbox) -> None:
    box.tracking_rule = TrackingRule.NONE
    box.save()
    sim.control.add_mime(ALICE, "inbox", raw(1, sender="a@b.example"), categories=["Tracked to CRM"])
    item = sim.control.add_mime(ALICE, "inbox", raw(2, sender="a@b.example"))
    run(box)
    assert list(Email.objects.values_list("tracked_by", flat=True)) == [TrackedBy.CATEGORY]
    sim.control.update_item(item["id"], {"categories": ["Tracked to CRM"]})  # categorised later
    assert run(box).counts == {"tracked": 1}


def test_a_tracked_folder_under_the_inbox_regards_its_record(sim: RunningSimulator, box: Mailbox, ann: Contact) -> None:
    backend = EwsIncoming(box)
    try:
        Folder(parent=backend.account.inbox, name="Ann Lee").save()
    finally:
        backend.close()
    TrackedFolder.objects.create(mailbox=box, folder_name="Ann Lee", regarding_contact=ann)
    sim.control.add_mime(ALICE, "Ann Lee", raw(1, sender="someone@else.example"))
    done = run(box)
    assert done.status == RunStatus.SUCCEEDED, done.error
    email = Email.objects.get()
    assert email.tracked_by == TrackedBy.FOLDER and email.regarding_contact == ann
    folder = TrackedFolder.objects.get()
    assert folder.folder_id and folder.sync_state


def test_a_deleted_tracked_folder_is_noted_and_the_inbox_is_still_tracked(
    sim: RunningSimulator, box: Mailbox, ann: Contact
) -> None:
    backend = EwsIncoming(box)
    try:
        Folder(parent=backend.account.inbox, name="Ann Lee").save()
    finally:
        backend.close()
    TrackedFolder.objects.create(mailbox=box, folder_name="Ann Lee", regarding_contact=ann)
    assert run(box).status == RunStatus.SUCCEEDED
    backend = EwsIncoming(box)
    try:
        [gone] = [f for f in backend.account.inbox.children if f.name == "Ann Lee"]
        gone.delete()  # the user deleted (or renamed) it in Outlook
    finally:
        backend.close()
    sim.control.add_mime(ALICE, "inbox", raw(1))
    done = run(box)
    assert (done.status, done.counts) == (RunStatus.PARTIAL, {"tracked": 1})
    assert "Ann Lee" in done.error
    folder = TrackedFolder.objects.get()
    assert folder.last_error and not folder.folder_id  # looked for by name again at the next run
    box.refresh_from_db()
    assert box.enabled_incoming
    assert run(box).status == RunStatus.SUCCEEDED  # not (yet) there again: nothing to poll
    backend = EwsIncoming(box)
    try:
        Folder(parent=backend.account.inbox, name="Ann Lee").save()  # back
    finally:
        backend.close()
    sim.control.add_mime(ALICE, "Ann Lee", raw(2, sender="someone@else.example"))
    again = run(box)
    assert (again.status, again.counts) == (RunStatus.SUCCEEDED, {"tracked": 1}), again.error
    folder.refresh_from_db()
    assert folder.folder_id and not folder.last_error


def test_old_and_oversized_messages_are_not_downloaded(
    sim: RunningSimulator, box: Mailbox, ann: Contact, settings: Any
) -> None:
    sim.control.add_mime(ALICE, "inbox", raw(1))
    box.process_email_after = timezone.now() + timedelta(hours=1)
    box.save()
    sim.control.clear_requests()
    assert run(box).counts == {"skipped": 1}
    assert "GetItem" not in operations(sim)
    box.process_email_after = None
    box.save()
    settings.EMAIL_MAX_BYTES = 100
    sim.control.add_mime(ALICE, "inbox", raw(2, headers="X-Padding: " + "x" * 500 + "\r\n"))
    sim.control.clear_requests()
    assert run(box).counts == {"ignored": 1}
    assert "GetItem" not in operations(sim)
    assert "limit" in IgnoredMessage.objects.get().reason


def test_bad_messages_are_recorded_and_the_rest_tracked(sim: RunningSimulator, box: Mailbox, ann: Contact) -> None:
    box.tracking_rule = TrackingRule.ALL
    box.save()
    sim.control.add_mime(ALICE, "inbox", b"garbage without headers\r\n\r\n")
    sim.control.add_mime(
        ALICE,
        "inbox",
        b"From: ann@customer.example\r\nSubject: html\r\nMessage-ID: <h@x>\r\n"
        b"Content-Type: text/html; charset=bogus\r\n\r\n<p>Hi<script>steal()</script></p>\r\n",
    )
    done = run(box)
    assert done.counts == {"ignored": 1, "tracked": 1}
    email = Email.objects.get()
    assert email.body_html.strip() == "<p>Hi</p>" and "bogus" in email.status_reason
    assert "malformed" in IgnoredMessage.objects.get().reason


def test_wrong_credentials_disable_the_channel_and_leave_act_alone(sim: RunningSimulator, box: Mailbox) -> None:
    profile = box.profile
    profile.password = "wrong"
    profile.save()
    box.next_sync_at = timezone.now() + timedelta(minutes=3)
    box.enabled_act = True
    box.save()
    done = run(box)
    assert (done.status, done.error_kind) == (RunStatus.FAILED, ErrorKind.PERMANENT)
    box.refresh_from_db()
    assert not box.enabled_incoming and box.test_incoming == TestStatus.FAILURE
    assert "401" in box.disabled_reason
    assert box.enabled_act and box.next_sync_at is not None and box.consecutive_failures == 0


def test_ten_transient_failures_in_a_row_disable_the_channel(sim: RunningSimulator, box: Mailbox) -> None:
    sim.control.add_fault("SyncFolderItems", count=10, error="ErrorServerBusy")
    for _ in range(9):
        assert run(box).error_kind == ErrorKind.TRANSIENT
    last = run(box)
    assert last.error_kind == ErrorKind.PERMANENT and "10 times" in last.error
    box.refresh_from_db()
    assert not box.enabled_incoming


def test_test_and_enable_starts_the_failure_count_again(sim: RunningSimulator, box: Mailbox, system: Any) -> None:
    sim.control.add_fault("SyncFolderItems", count=10, error="ErrorServerBusy")
    for _ in range(10):
        last = run(box)
    assert last.error_kind == ErrorKind.PERMANENT
    test = run_test(enqueue_test(box, system).pk)
    box.refresh_from_db()
    assert box.enabled_incoming, test.results
    sim.control.add_fault("SyncFolderItems", count=1, error="ErrorServerBusy")
    busy = run(box)  # one busy server after the test passed is one failure, not the eleventh
    assert busy.error_kind == ErrorKind.TRANSIENT and "times in a row" not in busy.error
    box.refresh_from_db()
    assert box.enabled_incoming


# The schedule --------------------------------------------------------------------------------


def test_the_scheduler_polls_incoming_mailboxes_every_interval(
    sim: RunningSimulator, box: Mailbox, settings: Any
) -> None:
    settings.EMAIL_POLL_INTERVAL = 300
    now = timezone.now()
    assert box in channel.due(Channel.INCOMING, now)
    tick(now)
    queued = SyncRun.objects.get(mailbox=box, channel=Channel.INCOMING)
    assert queued.status == RunStatus.QUEUED
    run_sync(queued.pk)
    assert box not in channel.due(Channel.INCOMING, timezone.now())
    assert box in channel.due(Channel.INCOMING, timezone.now() + timedelta(seconds=300))


def test_sync_now_during_a_poll_runs_once_the_poll_is_done(sim: RunningSimulator, box: Mailbox, ann: Contact) -> None:
    queue = django_rq.get_queue("sync")
    now = timezone.now()
    polling = SyncRun.objects.create(
        mailbox=box, channel=Channel.INCOMING, status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    sim.control.add_mime(ALICE, "inbox", raw(1))
    asked = enqueue_sync(box, Channel.INCOMING, Trigger.MANUAL)  # "Sync now" while the poll runs
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    asked.refresh_from_db()
    assert asked.status == RunStatus.QUEUED  # the poll holds the mailbox: delivered again a little later
    registry = queue.scheduled_job_registry
    [job_id] = registry.get_job_ids()
    assert registry.get_scheduled_time(job_id) > timezone.now()
    polling.status, polling.finished_at = RunStatus.SUCCEEDED, timezone.now()
    polling.save()
    registry.connection.zadd(registry.key, {job_id: 0})  # its time has come
    scheduler = RQScheduler([queue], connection=queue.connection)
    scheduler.prepare_registries([queue.name])
    scheduler.enqueue_scheduled_jobs()  # what a worker started --with-scheduler does
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    asked.refresh_from_db()
    assert asked.status == RunStatus.SUCCEEDED, asked.error
    assert Email.objects.get().subject == "Message 1"


def test_a_failed_run_is_retried_after_its_back_off(sim: RunningSimulator, box: Mailbox) -> None:
    sim.control.add_fault("SyncFolderItems", error="ErrorServerBusy", back_off_ms=120_000)
    failed = run(box)
    assert failed.counts["retry_in"] >= 120
    assert box not in channel.due(Channel.INCOMING, timezone.now() + timedelta(seconds=60))
    assert box in channel.due(Channel.INCOMING, timezone.now() + timedelta(seconds=failed.counts["retry_in"] + 1))


def test_disabled_and_untested_mailboxes_are_not_polled(sim: RunningSimulator, box: Mailbox) -> None:
    box.enabled_incoming = False
    box.save()
    assert box not in channel.due(Channel.INCOMING, timezone.now())


def test_outgoing_runs_are_queued_when_emails_are_due(sim: RunningSimulator, box: Mailbox, alice: Any) -> None:
    from crm.models import EmailDirection, EmailStatus

    box.test_outgoing, box.enabled_outgoing = TestStatus.SUCCESS, True
    box.save()
    assert box not in channel.due(Channel.OUTGOING, timezone.now())
    Email.objects.create(
        organization=box.organization,
        owner=alice,
        mailbox=box,
        subject="Offer",
        to=[{"address": "a@b.example"}],
        direction=EmailDirection.OUTGOING,
        status=EmailStatus.PENDING_SEND,
    )
    assert box in channel.due(Channel.OUTGOING, timezone.now())


def test_an_email_sent_from_the_crm_is_not_tracked_twice_when_a_colleague_receives_it(
    sim: RunningSimulator, box: Mailbox, org: Any, ews_profile: Any, system: Any, alice: Any
) -> None:
    from crm.models import EmailDirection, EmailStatus
    from mailboxes.models import Membership, Role
    from tests.conftest import make_user

    box.test_outgoing, box.enabled_outgoing = TestStatus.SUCCESS, True
    box.save()
    amy = make_user("amy")
    Membership.add(system, amy, org, Role.USER)
    colleague = ready(make_mailbox(org, amy, "amy@example.com", ews_profile, tracking_rule=TrackingRule.ALL))
    email = Email.objects.create(
        organization=org,
        owner=alice,
        mailbox=box,
        subject="Offer",
        body_text="See the offer.",
        to=[{"address": "amy@example.com", "name": "Amy"}],
        direction=EmailDirection.OUTGOING,
        status=EmailStatus.PENDING_SEND,
    )
    assert box in channel.due(Channel.OUTGOING, timezone.now())
    tick(timezone.now())
    queued = SyncRun.objects.get(mailbox=box, channel=Channel.OUTGOING, status=RunStatus.QUEUED)
    sent = run_sync(queued.pk)
    assert sent.status == RunStatus.SUCCEEDED, sent.error
    assert sent.counts["sent"] == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.message_id
    [copy] = sim.control.items(ALICE, "sentitems")
    assert copy["message_id"] == email.message_id
    received = run(colleague)
    assert received.counts == {"existing": 1}
    assert Email.objects.count() == 1
    assert set(EmailReceipt.objects.values_list("mailbox__address", flat=True)) >= {"amy@example.com"}


def test_a_refused_sync_state_reads_the_inbox_again_without_duplicates(
    sim: RunningSimulator, box: Mailbox, ann: Contact
) -> None:
    sim.control.add_mime(ALICE, "inbox", raw(1))
    run(box)
    FolderState.objects.filter(mailbox=box, folder="email:inbox").update(sync_state="garbled")
    sim.control.add_mime(ALICE, "inbox", raw(2))
    done = run(box)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.counts == {"existing": 1, "tracked": 1} and Email.objects.count() == 2
