"""The incoming and outgoing email runs, inside the sync engine (``engine.run_sync`` dispatches here).

A run is a ``SyncRun`` with channel incoming or outgoing: claimed, heart-beaten and recovered
like an ACT run. What differs:

1. **Incoming**: for the Inbox and each tracked folder, fetch a page of new messages since the
   stored state, track them (``Tracker.track_batch``; a forward mailbox hands each message to
   ``forward.process_forwarded``), and only then store the new state: in ``FolderState`` row
   "email:inbox", or the tracked folder's ``sync_state``. A crash between fetching and storing
   replays the page, and the Message-ID and receipt rules make the replay add nothing. A tracked
   folder's error (renamed or deleted on the server) is the folder's own: kept in its
   ``last_error``, said in the run's error text (the run "partly succeeded"), and the folder is
   looked for by name again next time; the Inbox and the other folders go on.
2. **Outgoing**: ``outgoing.send_pending`` sends the mailbox's due emails, each once.
3. **Errors**: transient ones fail the run and the scheduler retries after a back-off; after
   ``MAX_TRIES`` failed runs in a row, or at once for a permanent error, the channel is disabled
   with the reason (``engine._disable``, as for ACT) until Test & Enable passes again; the runs
   before the mailbox's last Test & Enable do not count.
4. **Schedule**: the mailbox's ``next_sync_at``, ``last_success_at`` and ``consecutive_failures``
   belong to ACT and are left alone; an email channel's schedule is read from its own runs
   (``due``): incoming every ``EMAIL_POLL_INTERVAL`` seconds after its last run, outgoing whenever
   emails are due to be sent or left in "sending" by an earlier run, and after a failed run only
   once its back-off has passed.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from crm.models import Email, EmailDirection, EmailStatus, TrackedFolder
from mailboxes.models import (
    ApprovalStatus,
    Channel,
    IncomingMethod,
    Mailbox,
    Membership,
    OwnerType,
    ProfileKind,
    SyncMethod,
    TestStatus,
)
from syncjobs.engine import MAX_TRIES, Heartbeat, _disable, backoff
from syncjobs.errors import InvalidSyncState, PermanentError, SyncError, TransientError
from syncjobs.jobs import enqueue_sync
from syncjobs.mail.tracking import IGNORED, TRACKED, Tracker
from syncjobs.mail.transport import IncomingTransport, incoming_for, outgoing_for
from syncjobs.models import ErrorKind, FolderState, Phase, RunStatus, SyncRun, Trigger

log = logging.getLogger(__name__)

PAGE = 512  # messages fetched (and tracked) per step
MAX_PAGES = 200  # per folder and run: a larger backlog goes on in the next run
INBOX_STATE = "email:inbox"
# A scheduler pass comes every minute or so: a run queued this much less than an interval ago
# counts as due, so that a mailbox is polled every pass when the interval equals the pass's.
SLACK = timedelta(seconds=5)


def poll_interval() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "EMAIL_POLL_INTERVAL", 300)))


# The run -------------------------------------------------------------------------------------


def run_mail(run: SyncRun) -> SyncRun:
    """Do a claimed email run and close it (see the module's docstring)."""
    counts: Counter[str] = Counter()
    notes: list[str] = []  # what went wrong without failing the run (a tracked folder)
    with Heartbeat(run.pk):
        try:
            if run.channel == Channel.INCOMING:
                incoming(run.mailbox, counts, notes)
            else:
                outgoing(run, counts)
        except TransientError as error:
            finish(run, RunStatus.FAILED, counts, str(error), ErrorKind.TRANSIENT, error.back_off)
        except PermanentError as error:
            finish(run, RunStatus.FAILED, counts, str(error), ErrorKind.PERMANENT)
        except Exception as error:  # a bug must not leave the run "running"
            log.exception("Email run %s failed", run.pk)
            message = f"Internal error: {type(error).__name__}: {error}"
            finish(run, RunStatus.FAILED, counts, message, ErrorKind.TRANSIENT)
        else:
            if failed := counts.get("failed", 0):
                notes.append(f"{failed} email(s) failed; see their status on the email pages.")
            finish(run, RunStatus.PARTIAL if notes else RunStatus.SUCCEEDED, counts, " ".join(notes))
    return run


def incoming(mailbox: Mailbox, counts: Counter[str], notes: list[str]) -> None:
    """Poll the Inbox, then each tracked folder; a folder's failure is noted in ``notes`` and on the
    folder (``_poll_folder``), while an error of the Inbox fails the run."""
    transport = incoming_for(mailbox)
    try:
        forward = mailbox.incoming_method == IncomingMethod.FORWARD_MAILBOX
        tracker = None if forward else Tracker(mailbox)
        inbox, _ = FolderState.objects.get_or_create(mailbox=mailbox, folder=INBOX_STATE)
        _poll(transport, "inbox", inbox.sync_state, tracker, mailbox, counts, lambda state: _keep_inbox(inbox, state))
        if not forward and mailbox.profile.kind != ProfileKind.POP3_SMTP:  # POP3 has the Inbox only
            folders = TrackedFolder.objects.filter(mailbox=mailbox).order_by("pk")[: TrackedFolder.MAX_PER_MAILBOX]
            for folder in folders:
                if problem := _poll_folder(transport, folder, tracker, mailbox, counts):
                    notes.append(f"Tracked folder “{folder.folder_name}”: {problem}")
    finally:
        transport.close()


def _poll_folder(
    transport: IncomingTransport, folder: TrackedFolder, tracker: Tracker | None, mailbox: Mailbox, counts: Counter[str]
) -> str:
    """Poll one tracked folder; what went wrong in words, "" when nothing did.

    A folder's error (renamed or deleted on the server, access refused, ...) is its own: it is kept
    in the folder's ``last_error`` and its id is cleared, so that the next run looks for the folder
    by name again; the Inbox and the other folders go on. A folder not (yet) on the server is skipped.
    """
    try:
        if not _resolve(folder, transport, mailbox.profile.kind):
            return ""
        _poll(transport, folder.folder_id, folder.sync_state, tracker, mailbox, counts, _keeper(folder))
    except SyncError as error:
        log.warning("Tracked folder %s / %s failed: %s", mailbox, folder.folder_name, error)
        folder.folder_id, folder.last_error = "", str(error)
        folder.save(update_fields=["folder_id", "last_error"])
        return str(error)
    if folder.last_error:
        folder.last_error = ""
        folder.save(update_fields=["last_error"])
    return ""


def _poll(
    transport: IncomingTransport,
    folder: str,
    state: str,
    tracker: Tracker | None,
    mailbox: Mailbox,
    counts: Counter[str],
    keep: Any,
) -> None:
    """Fetch, track, then keep the state: page after page until the folder has nothing new."""
    from syncjobs.mail.forward import process_forwarded

    for _ in range(MAX_PAGES):
        try:
            batch = transport.fetch(folder, state, PAGE)
        except InvalidSyncState:
            if not state:
                raise
            # The server no longer knows the state (the mailbox moved, or was restored): read the
            # folder from the start; what the CRM has already is found by its Message-ID.
            log.warning("Incoming state of %s / %s refused; reading the folder again", mailbox, folder)
            state = ""
            continue
        if tracker is not None:
            for outcome in tracker.track_batch(batch.messages):
                counts[outcome.status] += 1
        else:
            for fetched in batch.messages:
                counts[TRACKED if process_forwarded(mailbox, fetched, transport) else IGNORED] += 1
        state = batch.state
        keep(state)
        if not batch.more:
            break


def _keep_inbox(row: FolderState, state: str) -> None:
    row.sync_state, row.phase, row.last_poll_at = state, Phase.POLL, timezone.now()
    row.save(update_fields=["sync_state", "phase", "last_poll_at"])


def _keeper(folder: TrackedFolder) -> Any:
    def keep(state: str) -> None:
        folder.sync_state = state
        folder.save(update_fields=["sync_state"])

    return keep


def _resolve(folder: TrackedFolder, transport: Any, kind: str) -> bool:
    """Whether the server can be asked about the folder, its id found first if it has none.

    EWS finds a folder's id by its name under the Inbox (once); IMAP addresses folders by name.
    """
    if not folder.folder_id:
        folder.folder_id = transport.folder_id(folder.folder_name) if hasattr(transport, "folder_id") else ""
        folder.folder_id = folder.folder_id or (folder.folder_name if kind == ProfileKind.IMAP_SMTP else "")
        if not folder.folder_id:
            return False  # not (yet) on the server
        folder.save(update_fields=["folder_id"])
    return True


def outgoing(run: SyncRun, counts: Counter[str]) -> None:
    from syncjobs.mail.outgoing import send_pending

    transport = outgoing_for(run.mailbox)
    try:
        counts.update(send_pending(run, run.mailbox, transport))
    finally:
        transport.close()


@transaction.atomic
def finish(
    run: SyncRun, status: str, counts: Counter[str], error: str = "", kind: str = "", wait: float | None = None
) -> None:
    """Close the run; a permanent error, or too many transient ones in a row, disables the channel.

    A transient failure keeps its back-off in ``counts["retry_in"]`` (seconds) for ``due``.
    """
    now = timezone.now()
    summary: dict[str, Any] = dict(counts)
    if kind == ErrorKind.TRANSIENT:
        failures = _failures_in_a_row(run) + 1
        if failures >= MAX_TRIES:
            kind = ErrorKind.PERMANENT
            error = f"{error} (failed {failures} times in a row)"
        else:
            summary["retry_in"] = round(backoff(failures, wait).total_seconds())
    SyncRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=now, counts=summary, error=error[:4000], error_kind=kind, heartbeat_at=now
    )
    run.status, run.finished_at, run.counts, run.error, run.error_kind = status, now, summary, error, kind
    if kind == ErrorKind.PERMANENT:
        mailbox = Mailbox.objects.select_related("organization").get(pk=run.mailbox_id)
        mailbox.last_error = error
        _disable(mailbox, run.channel, error, ["last_error", "updated"])


def _failures_in_a_row(run: SyncRun) -> int:
    """How many runs of the channel failed since its last success, this one not counted; a Test &
    Enable starts the count again (the runs before the mailbox's last test do not count)."""
    runs = SyncRun.objects.filter(mailbox_id=run.mailbox_id, channel=run.channel, finished_at__isnull=False)
    tested_at = Mailbox.objects.filter(pk=run.mailbox_id).values_list("tested_at", flat=True).first()
    if tested_at is not None:
        runs = runs.filter(finished_at__gt=tested_at)
    statuses = runs.exclude(pk=run.pk).order_by("-finished_at").values_list("status", flat=True)[:MAX_TRIES]
    n = 0
    for status in statuses:
        if status != RunStatus.FAILED:
            break
        n += 1
    return n


# The schedule --------------------------------------------------------------------------------


def _gated(channel: str) -> Q:
    """The gate of ``Mailbox.can_sync`` for an email channel, as a query."""
    approved = (
        Q(approval_status=ApprovalStatus.APPROVED)
        | Q(owner_type=OwnerType.USER, organization__require_approval_user_mailboxes=False)
        | Q(owner_type=OwnerType.QUEUE, organization__require_approval_queue_mailboxes=False)
    )
    sync_organization = Membership.objects.filter(
        user=OuterRef("user"), organization=OuterRef("organization"), is_sync_organization=True
    )
    methods = (
        (IncomingMethod.SERVER_SIDE, IncomingMethod.FORWARD_MAILBOX)
        if channel == Channel.INCOMING
        else (SyncMethod.SERVER_SIDE,)
    )
    return (
        approved
        & Q(is_active=True, profile__isnull=False, **{f"{channel}_method__in": methods})
        & Q(**{f"test_{channel}": TestStatus.SUCCESS, f"enabled_{channel}": True})
        & ~Q(address="")
        & (Q(user__isnull=True) | Q(Exists(sync_organization)))
    )


def due(channel: str, now: datetime) -> list[Mailbox]:
    """The mailboxes whose email channel should run now (see the module's docstring, step 4)."""
    runs = SyncRun.objects.filter(mailbox=OuterRef("pk"), channel=channel)
    last = runs.order_by("-queued_at")
    qs = (
        Mailbox.objects.filter(_gated(channel))
        .exclude(Exists(runs.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING))))
        .annotate(
            last_queued=Subquery(last.values("queued_at")[:1]),
            last_finished=Subquery(last.values("finished_at")[:1]),
            last_status=Subquery(last.values("status")[:1]),
            last_counts=Subquery(last.values("counts")[:1]),
            last_kind=Subquery(last.values("error_kind")[:1]),
        )
        .select_related("organization", "profile")
    )
    if channel == Channel.OUTGOING:
        # An email left in "sending" (a lost run, an outcome the server could not confirm) is due
        # too: only an outgoing run settles it (``send_pending`` asks the server first).
        pending = Q(status=EmailStatus.PENDING_SEND) & (Q(next_send_at__isnull=True) | Q(next_send_at__lte=now))
        to_send = Email.objects.filter(mailbox=OuterRef("pk"), direction=EmailDirection.OUTGOING).filter(
            pending | Q(status=EmailStatus.SENDING)
        )
        qs = qs.filter(Exists(to_send))
    else:
        poll = Q(last_queued__isnull=True) | Q(last_queued__lte=now - poll_interval() + SLACK)
        qs = qs.filter(poll | Q(last_status=RunStatus.FAILED))
    return [m for m in qs if _past_backoff(m, now)]


def _past_backoff(mailbox: Any, now: datetime) -> bool:
    if mailbox.last_status != RunStatus.FAILED or mailbox.last_kind != ErrorKind.TRANSIENT:
        return True
    counts = mailbox.last_counts if isinstance(mailbox.last_counts, dict) else {}
    if isinstance(mailbox.last_counts, str):  # a JSON value through a subquery may come back as text
        try:
            counts = json.loads(mailbox.last_counts)
        except ValueError:
            counts = {}
    wait = timedelta(seconds=float(counts.get("retry_in", 0) or 0))
    return mailbox.last_finished is None or mailbox.last_finished + wait <= now


def schedule(now: datetime) -> int:
    """Queue the email runs that are due; returns how many were queued (scheduler.tick)."""
    queued = 0
    for channel in (Channel.INCOMING, Channel.OUTGOING):
        for mailbox in due(channel, now):
            enqueue_sync(mailbox, channel, Trigger.SCHEDULE)
            queued += 1
    return queued
