"""One sync run of a mailbox's appointments, contacts and tasks (SYNC.md, step by step).

1. **Claim** the run row (conditional update; the database refuses a second running
   run of the pair, and the profile's connection limit is checked under a row lock).
2. **Gather** per folder: SyncFolderItems from the stored state (ids and change keys),
   full items only for what changed; the CRM records changed since the cursor (or
   all of them on a full reconcile), and the links of both.
3. **Decide** per key with the pure ``syncjobs.decide.decide``.
4. **Guard** against mass deletes.
5. **Apply** the mailbox side in batches; one item's error never stops the others.
6. **Commit** in one transaction: CRM writes, links, conflicts, folder states, counts.
7. A **heartbeat** thread keeps the run row fresh while it works.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, Value
from django.utils import timezone

from audit.log import Actor, record
from crm.directions import all_directions
from crm.filters import mailbox_filters
from crm.models import SYNCED_MODELS, Appointment, CrmRecord, RecordType
from mailboxes.models import Channel, EmailServerProfile, Mailbox, TestStatus
from monitoring.alerts import raise_alert
from monitoring.models import AlertKind
from syncjobs import decide as d
from syncjobs import mapping
from syncjobs.backends import backend_for
from syncjobs.backends.base import DELETED, FOLDERS, UPDATED, Backend, Change, FolderChanges, Item, Result
from syncjobs.errors import InvalidSyncState, ItemError, PermanentError, SyncError, TransientError
from syncjobs.jobs import requeue
from syncjobs.models import (
    Conflict,
    ConflictStatus,
    ErrorKind,
    FolderState,
    ItemLink,
    LinkState,
    Phase,
    RunStatus,
    SyncRun,
)

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 15.0  # seconds; SYNC.md: at least every 30 s
# Records changed this long before the previous run's read are read again: a transaction
# that committed late is not missed (a record read twice with the same content does nothing).
CURSOR_OVERLAP = timedelta(seconds=60)
RECONCILE_EVERY = timedelta(days=1)
QUARANTINE_AFTER = 3
MAX_TRIES = 10
GUARD_SHARE = 0.30
GUARD_MIN = 20
PROFILE_BUSY_DELAY = timedelta(seconds=15)
# Fields that EWS keeps in one property: an update of one sends both.
COMPANIONS = {"business_phone": "mobile_phone", "mobile_phone": "business_phone", "first_name": "last_name"}
COMPANIONS["last_name"] = "first_name"
LINK_FIELDS = [
    "exchange_id",
    "change_key",
    "crm_hash",
    "exchange_hash",
    "base",
    "state",
    "error_count",
    "last_error",
    "next_retry_at",
    "last_synced_at",
]
FOLDER_STATE_FIELDS = [
    "sync_state",
    "pending",
    "phase",
    "last_poll_at",
    "crm_cursor",
    "filters_fingerprint",
    "last_reconcile_at",
]


class GuardStop(SyncError):
    """The run would delete an unusual share of the mailbox's items."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# Claim and finish ----------------------------------------------------------------------------


def recover_stale(now: datetime | None = None, **filters: Any) -> list[SyncRun]:
    """Mark running runs without a fresh heartbeat failed (worker lost); returns them."""
    lost = []
    for run in SyncRun.objects.stale(now).filter(**filters).select_related("mailbox"):
        changed = SyncRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, heartbeat_at=run.heartbeat_at).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error="Worker lost: the run stopped sending heartbeats.",
            error_kind=ErrorKind.LOST,
        )
        if changed:
            lost.append(run)
    return lost


def claim(run_id: Any) -> SyncRun | None:
    """Take a queued run: None when another worker has it, another run of the pair is running,
    or the profile's connection limit is reached (in these two cases the run is delivered again later)."""
    related = ("mailbox__profile", "mailbox__organization", "mailbox__user")
    run = SyncRun.objects.select_related(*related).filter(pk=run_id).first()
    if run is None or run.status != RunStatus.QUEUED:
        return None
    now = timezone.now()
    try:
        with transaction.atomic():
            profile = run.mailbox.profile
            if profile is not None:
                EmailServerProfile.objects.select_for_update().filter(pk=profile.pk).first()
                busy = SyncRun.objects.filter(status=RunStatus.RUNNING, mailbox__profile=profile).count()
                if busy >= profile.max_concurrent_connections:
                    requeue(run, PROFILE_BUSY_DELAY)
                    return None
            changed = SyncRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker_name()
            )
    except IntegrityError:
        # Another run of this mailbox and channel is running ("Sync now" during a poll, a second
        # email to send): this one is delivered again a little later, not left for the scheduler's
        # redelivery.
        requeue(run, PROFILE_BUSY_DELAY)
        return None
    if changed != 1:
        return None
    run.status, run.started_at, run.heartbeat_at = RunStatus.RUNNING, now, now
    return run


def backoff(tries: int, server_wait: float | None) -> timedelta:
    """Exponential, with jitter, never shorter than what the server asked for; at most 5 minutes."""
    seconds = min(30 * 2 ** max(tries - 1, 0), 300) * random.uniform(0.8, 1.2)
    return timedelta(seconds=max(seconds, server_wait or 0))


@transaction.atomic
def _finish(
    run: SyncRun, status: str, counts: dict[str, Any], error: str = "", kind: str = "", wait: float | None = None
) -> None:
    """Close the run and set the mailbox's next sync, in one transaction."""
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=now, counts=counts, error=error[:4000], error_kind=kind, heartbeat_at=now
    )
    run.status, run.finished_at, run.counts, run.error, run.error_kind = status, now, counts, error, kind
    mailbox = run.mailbox
    interval = timedelta(minutes=mailbox.profile.polling_interval_minutes if mailbox.profile else 5)
    fields = ["next_sync_at", "consecutive_failures", "last_error", "updated"]
    if status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
        mailbox.last_success_at = now
        mailbox.consecutive_failures = 0
        mailbox.last_error = error
        mailbox.next_sync_at = now + interval
        fields.append("last_success_at")
    elif kind == ErrorKind.TRANSIENT and mailbox.consecutive_failures + 1 < MAX_TRIES:
        mailbox.consecutive_failures += 1
        mailbox.last_error = error
        mailbox.next_sync_at = now + backoff(mailbox.consecutive_failures, wait)
    elif kind == ErrorKind.GUARD:
        mailbox.consecutive_failures += 1
        mailbox.last_error = error
        mailbox.next_sync_at = now + interval
    else:
        _disable(mailbox, run.channel, error, fields)
        return
    mailbox.save(update_fields=fields)


def _disable(mailbox: Mailbox, channel: str, error: str, fields: list[str]) -> None:
    """A permanent error: switch the channel off until Test & Enable passes again, and say why."""
    mailbox.consecutive_failures += 1
    mailbox.last_error = error
    mailbox.next_sync_at = None
    mailbox.disabled_reason = error
    setattr(mailbox, f"enabled_{channel}", False)
    setattr(mailbox, f"test_{channel}", TestStatus.FAILURE)
    mailbox.save_audited(
        Actor.system("sync engine"),
        "mailbox.channel_disabled",
        update_fields=[*fields, "disabled_reason", f"enabled_{channel}", f"test_{channel}"],
    )
    raise_alert(AlertKind.CHANNEL_DISABLED, mailbox=mailbox, channel=channel, detail=error)


class Heartbeat:
    """Refreshes the run row's heartbeat from a thread of its own while the run works."""

    def __init__(self, run_id: Any) -> None:
        self.run_id = run_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        try:
            while not self.stop.wait(HEARTBEAT_EVERY):
                try:
                    SyncRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())
                except Exception:  # a missed beat is not fatal; the next one tries again
                    log.warning("Heartbeat of run %s failed", self.run_id, exc_info=True)
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def run_sync(run_id: Any, backend: Backend | None = None) -> SyncRun | None:
    """Claim and run one queued run; returns it finished, or None when it was not claimed."""
    close_old_connections()
    run = claim(run_id)
    if run is None:
        return None
    if run.channel != Channel.ACT:
        from syncjobs.mail.channel import run_mail  # the email channels (their module imports this one)

        return run_mail(run)
    with Heartbeat(run.pk):
        sync = ActSync(run, backend)
        try:
            counts = sync.run()
        except GuardStop as error:
            _finish(run, RunStatus.FAILED, sync.summary(), str(error), ErrorKind.GUARD)
            record(
                Actor.system("sync engine"),
                "mailbox.mass_delete_stopped",
                run.mailbox,
                organization=run.mailbox.organization,
            )
            raise_alert(AlertKind.MASS_DELETE_REFUSED, mailbox=run.mailbox, detail=str(error))
        except TransientError as error:
            _finish(run, RunStatus.FAILED, sync.summary(), str(error), ErrorKind.TRANSIENT, error.back_off)
        except PermanentError as error:
            _finish(run, RunStatus.FAILED, sync.summary(), str(error), ErrorKind.PERMANENT)
        except Exception as error:  # a bug must not leave the run "running"
            log.exception("Sync run %s failed", run.pk)
            _finish(
                run,
                RunStatus.FAILED,
                sync.summary(),
                f"Internal error: {type(error).__name__}: {error}",
                ErrorKind.TRANSIENT,
            )
        else:
            failed = counts.get("failed", 0)
            status = RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED
            note = f"{failed} item(s) failed; see the items listed on the mailbox page." if failed else ""
            _finish(run, status, counts, note)
    return run


# The run ---------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One key of a folder: a CRM record id and what both sides hold."""

    crm_id: str
    link: ItemLink | None = None
    record: CrmRecord | None = None
    crm: Any = None  # CrmSide, d.GONE or None
    item: Item | None = None
    ex: Any = None  # ExchangeSide, d.GONE or None
    decision: d.Decision | None = None
    result: Result | None = None
    new_record: CrmRecord | None = None
    keep_in_mailbox: bool = False  # leaving the filter only unlinks (a past appointment)
    old_base: dict[str, Any] = field(default_factory=dict)  # the link's base before this run

    @property
    def is_new_item(self) -> bool:
        return self.crm_id.startswith("new:")


@dataclass
class Plan:
    record_type: str
    folder: str
    state: FolderState
    rules: d.Rules
    new_state: str
    fingerprint: str
    full: bool
    cursor: datetime
    entries: dict[str, Entry] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)


class ActSync:
    def __init__(self, run: SyncRun, backend: Backend | None = None) -> None:
        self.sync_run = run
        self.mailbox = run.mailbox
        self.backend = backend
        self.counts: dict[str, Any] = {"to_exchange": Counter(), "to_crm": Counter(), "failed": 0}
        self.now = timezone.now()

    def run(self) -> dict[str, Any]:
        if self.mailbox.user is None:
            raise PermanentError("A queue mailbox has no user whose records could sync.")
        self.backend = self.backend or backend_for(self.mailbox)
        try:
            self._load_settings()
            changes = self._sync_folders()
            plans = [self.gather(record_type, changes[FOLDERS[record_type]]) for record_type in SYNCED_MODELS]
            for plan in plans:
                self.decide(plan)
            self.guard(plans)
            for plan in plans:
                self.apply(plan)
            with transaction.atomic():
                for plan in plans:
                    self.commit(plan)
                FolderState.objects.bulk_update([p.state for p in plans], FOLDER_STATE_FIELDS)
        finally:
            self.backend.close()
        return self.summary()

    def _load_settings(self) -> None:
        """What every folder needs, in a few queries whatever the number of folders."""
        mailbox, org = self.mailbox, self.mailbox.organization
        self.filters = mailbox_filters(mailbox.user, org)
        self.directions = all_directions(org.pk)
        states = {s.folder: s for s in FolderState.objects.filter(mailbox=mailbox, folder__in=FOLDERS.values())}
        for folder in set(FOLDERS.values()) - set(states):
            states[folder] = FolderState.objects.create(mailbox=mailbox, folder=folder)
        self.states = states
        self.retry: dict[str, list[ItemLink]] = {record_type: [] for record_type in SYNCED_MODELS}
        for link in ItemLink.objects.filter(mailbox=mailbox, state=LinkState.ERROR):
            self.retry[link.record_type].append(link)

    def summary(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in self.counts.items()}

    def _previous_failed(self) -> bool:
        last = (
            SyncRun.objects.filter(mailbox=self.mailbox, channel=self.sync_run.channel, finished_at__isnull=False)
            .exclude(pk=self.sync_run.pk)
            .order_by("-started_at")
            .values_list("status", flat=True)
            .first()
        )
        return last == RunStatus.FAILED

    # Gather ------------------------------------------------------------------------------------

    def _sync_folders(self) -> dict[str, FolderChanges | SyncError]:
        """SyncFolderItems of every folder, one after the other.

        Not in parallel: exchangelib's session pool deadlocks when a request that runs beside
        others on the same protocol meets ErrorServerBusy (decrease_poolsize waits for a session
        while holding the lock that adding one needs).
        """
        changes: dict[str, FolderChanges | SyncError] = {}
        for folder, state in self.states.items():
            try:
                changes[folder] = self.backend.sync_folder(
                    folder, state.sync_state if state.phase != Phase.RESYNC else ""
                )
            except InvalidSyncState as error:
                changes[folder] = error
        return changes

    def gather(self, record_type: str, changes: FolderChanges | SyncError) -> Plan:
        folder = FOLDERS[record_type]
        org = self.mailbox.organization
        state = self.states[folder]
        fingerprint = self.filters[record_type][1]
        full = (
            state.crm_cursor is None
            or state.phase != Phase.POLL
            or fingerprint != state.filters_fingerprint
            or state.last_reconcile_at is None
            or state.last_reconcile_at < self.now - RECONCILE_EVERY
        )
        if isinstance(changes, InvalidSyncState):
            # Rebuild from scratch: items are matched to links by their stamp, nothing is created anew.
            state.phase = Phase.RESYNC
            full = True
            changes = self.backend.sync_folder(folder, "")
        rules = d.Rules(self.directions[record_type], org.ignore_logical_deletes)
        plan = Plan(record_type, folder, state, rules, changes.new_state, fingerprint, full, self.now)
        self._gather_exchange(plan, changes.changes)
        self._gather_crm(plan)
        return plan

    def _retry_links(self, plan: Plan) -> list[ItemLink]:
        """Links that failed last time, or that were released from quarantine: tried again every run."""
        return self.retry[plan.record_type]

    def _links(self, plan: Plan) -> Any:
        return ItemLink.objects.filter(mailbox=self.mailbox, record_type=plan.record_type)

    def _links_of(self, plan: Plan, crm_ids: list[str]) -> Iterator[ItemLink]:
        """The links of these records, in queries of bounded size (SQLite limits parameters)."""
        for ids in _chunks(_uuids(crm_ids)):
            yield from self._links(plan).filter(crm_id__in=ids)

    def _gather_exchange(self, plan: Plan, changes: list[Any]) -> None:
        latest = {i: Change(UPDATED, i) for i in plan.state.pending}
        latest.update({c.item_id: c for c in changes})  # the last change of an item counts
        links = {link.exchange_id: link for link in self._links(plan).filter(exchange_id__in=list(latest))}
        fetch = []
        for link in self._retry_links(plan):
            plan.entries[str(link.crm_id)] = Entry(str(link.crm_id), link=link)
            if link.exchange_id and link.exchange_id not in latest:
                links[link.exchange_id] = link
                fetch.append(link.exchange_id)
        for item_id, change in latest.items():
            link = links.get(item_id)
            if change.kind == DELETED:
                if link is not None:
                    entry = plan.entries.setdefault(str(link.crm_id), Entry(str(link.crm_id), link=link))
                    entry.ex = d.GONE
            elif link is None or not change.change_key or change.change_key != link.change_key:
                fetch.append(item_id)  # our own writes come back with the change key we stored
        items = self.backend.get_items(plan.folder, fetch) if fetch else []
        for item_id in set(fetch) - {i.item_id for i in items}:
            link = links.get(item_id)
            if link is not None:  # gone before we could read it
                plan.entries.setdefault(str(link.crm_id), Entry(str(link.crm_id), link=link)).ex = d.GONE
        tracked_category = self.mailbox.organization.tracked_category
        stamps = [i.crm_id for i in items if i.item_id not in links and i.crm_id]
        by_crm = {str(k.crm_id): k for k in self._links_of(plan, stamps)}
        uids = self._uid_matches(plan, [i for i in items if i.item_id not in links and not i.crm_id and i.uid])
        for item in items:
            link = links.get(item.item_id)
            if link is not None:
                key = str(link.crm_id)
            elif (
                item.crm_id
                and _is_uuid(item.crm_id)
                and (item.crm_id not in by_crm or not by_crm[item.crm_id].exchange_id)
            ):
                key, link = item.crm_id, by_crm.get(item.crm_id)  # ours: a create whose link was not stored
            elif item.uid in uids:
                key = uids[item.uid]
            else:
                key = f"new:{uuid.uuid4()}"  # a mailbox item the CRM has not seen
            entry = plan.entries.setdefault(key, Entry(key, link=link))
            entry.item = item
            entry.ex = d.ExchangeSide(item.values, tracked_category in item.categories, item.modified)

    def _uid_matches(self, plan: Plan, items: list[Item]) -> dict[str, str]:
        """Unstamped calendar items whose iCalendar UID is a CRM appointment's (not yet linked)."""
        if plan.record_type != RecordType.APPOINTMENT or not items:
            return {}
        linked = self._links(plan).filter(crm_id=OuterRef("pk"))
        found = Appointment.objects.filter(
            organization=self.mailbox.organization, ical_uid__in=[i.uid for i in items]
        ).exclude(Exists(linked))
        return {a.ical_uid: str(a.pk) for a in found}

    def _gather_crm(self, plan: Plan) -> None:
        model = SYNCED_MODELS[plan.record_type]
        org = self.mailbox.organization
        fq = self.filters[plan.record_type][0]
        linked = Exists(self._links(plan).filter(crm_id=OuterRef("pk")))
        in_filter = ExpressionWrapper(fq & Q(deleted_at__isnull=True), BooleanField()) if fq else Value(False)
        base = model.all_objects.filter(organization=org).annotate(in_filter=in_filter)
        relevant = (Q(deleted_at__isnull=True) & fq | linked) if fq else linked
        if plan.full:
            records = base.filter(relevant)
        else:
            records = base.filter(relevant, updated_at__gte=plan.state.crm_cursor - CURSOR_OVERLAP)
        seen = set()
        for rec in records:
            seen.add(str(rec.pk))
            self._add_record(plan, rec)
        # The records of changed items and of stamps, and the links of every record read.
        missing = [k for k, e in plan.entries.items() if not e.is_new_item and k not in seen]
        for ids in _chunks(_uuids(missing)):
            for rec in base.filter(pk__in=ids):
                seen.add(str(rec.pk))
                self._add_record(plan, rec)
        for key in missing:
            entry = plan.entries[key]
            if key not in seen and entry.link is not None:
                entry.crm = d.GONE  # the record is gone for good
        need = [k for k, e in plan.entries.items() if e.link is None and not e.is_new_item]
        for link in self._links_of(plan, need):
            plan.entries[str(link.crm_id)].link = link
        if plan.full:  # links whose record is gone for good
            for link in self._links(plan).exclude(Exists(model.all_objects.filter(pk=OuterRef("crm_id")))):
                entry = plan.entries.setdefault(str(link.crm_id), Entry(str(link.crm_id), link=link))
                entry.crm = d.GONE

    def _add_record(self, plan: Plan, rec: CrmRecord) -> None:
        key = str(rec.pk)
        entry = plan.entries.setdefault(key, Entry(key))
        entry.record = rec
        if rec.deleted_at is not None:
            entry.crm = d.GONE
            return
        in_filter = bool(rec.in_filter)  # type: ignore[attr-defined]
        # A past appointment that leaves a date filter stays in the calendar: unlink only.
        entry.keep_in_mailbox = not in_filter and isinstance(rec, Appointment) and rec.end < self.now
        entry.crm = d.CrmSide(mapping.crm_values(rec), in_filter, rec.updated_at.timestamp())

    # Decide ------------------------------------------------------------------------------------

    def decide(self, plan: Plan) -> None:
        for entry in plan.entries.values():
            if entry.link is None or entry.link.state != LinkState.QUARANTINED:
                self.decide_one(plan, entry)

    def decide_one(self, plan: Plan, entry: Entry) -> None:
        link, rules = entry.link, plan.rules
        # A link without a base never agreed on anything: a create that failed or was not stored.
        status = None
        if link is not None and link.base:
            removed = link.state == LinkState.REMOVED_IN_MAILBOX
            status = d.Status(link.crm_hash, link.exchange_hash, link.base, removed)
        if entry.keep_in_mailbox:
            rules = d.Rules(rules.directions, ignore_logical_deletes=True)
        entry.decision = d.decide(status, entry.crm, entry.ex, rules)
        if entry.decision.create_crm is not None:
            # The record takes the id the item is (or will be) stamped with.
            stamped = entry.item.crm_id if entry.item else None
            if entry.is_new_item:
                entry.crm_id = stamped if stamped and _is_uuid(stamped) and entry.record is None else str(uuid.uuid4())

    def guard(self, plans: list[Plan]) -> None:
        if self.sync_run.allow_mass_delete:
            return
        deletes = sum(
            1 for p in plans for e in p.entries.values() if e.decision and e.decision.delete_exchange and e.link
        )
        if deletes < GUARD_MIN:
            return
        linked = ItemLink.objects.filter(mailbox=self.mailbox).exclude(exchange_id="").count()
        if linked and deletes / linked > GUARD_SHARE:
            raise GuardStop(
                f"This run would delete {deletes} of the {linked} items the portal keeps in the mailbox "
                f"(more than {GUARD_SHARE:.0%}). Nothing was changed. Check the sync filters; if the deletes are "
                "right, confirm them on the mailbox page."
            )

    # Apply -------------------------------------------------------------------------------------

    def apply(self, plan: Plan) -> None:
        if any(e.decision and e.decision.create_exchange is not None for e in plan.entries.values()):
            if self._previous_failed():
                self._adopt_stamped(plan)
        creates, updates, deletes = [], [], []
        for entry in plan.entries.values():
            dec = entry.decision
            if dec is None or dec.is_noop:
                continue
            if dec.create_exchange is not None:
                creates.append(entry)
            elif dec.delete_exchange and self._item_id(entry):
                deletes.append(entry)
            elif dec.update_exchange or self._needs_stamp(entry):
                updates.append(entry)
        if creates:
            results = self.backend.create_items(plan.folder, [(e.crm_id, e.decision.create_exchange) for e in creates])
            self._record(creates, results)
        if deletes:
            self._record(deletes, self.backend.delete_items(plan.folder, [self._item_id(e) for e in deletes]))
        if updates:
            self._update(plan, updates, retry_stale=True)
        if creates or deletes or updates:
            self._skip_own_writes(plan)

    def _skip_own_writes(self, plan: Plan) -> None:
        """Move the sync state past this run's own writes.

        Without this the next run would read back every item it wrote, and an item the
        user deletes before then would never be reported (a create and a delete after
        the same state cancel out). A change by someone else in the meantime is kept
        in ``pending`` for the next run to read.
        """
        own = {e.result.item_id or self._item_id(e): e.result.change_key for e in plan.entries.values() if e.result}
        after = self.backend.sync_folder(plan.folder, plan.new_state)
        pending = set(plan.state.pending) - set(own)
        for change in after.changes:
            if change.item_id in own and (change.kind == DELETED or own[change.item_id] == change.change_key):
                continue
            pending.add(change.item_id)
        plan.new_state, plan.pending = after.new_state, sorted(pending)

    def _adopt_stamped(self, plan: Plan) -> None:
        """After a failed run: items it may have created are found by their stamp, not created again."""
        creates = [e for e in plan.entries.values() if e.decision and e.decision.create_exchange is not None]
        if not creates:
            return
        found = self.backend.find_stamped(plan.folder, [e.crm_id for e in creates])
        for entry in creates:
            item = found.get(entry.crm_id)
            if item is not None:
                entry.item = item
                entry.ex = d.ExchangeSide(item.values, False, item.modified)
                self.decide_one(plan, entry)

    def _needs_stamp(self, entry: Entry) -> bool:
        return entry.decision.create_crm is not None and entry.item is not None and entry.item.crm_id != entry.crm_id

    def _item_id(self, entry: Entry) -> str:
        if entry.item is not None:
            return entry.item.item_id
        return entry.link.exchange_id if entry.link else ""

    def _update(self, plan: Plan, entries: list[Entry], retry_stale: bool) -> None:
        batch = []
        for entry in entries:
            dec = entry.decision
            changes = dict(dec.update_exchange)
            for name in list(changes):
                if name in COMPANIONS and COMPANIONS[name] in dec.base:
                    changes.setdefault(COMPANIONS[name], dec.base[COMPANIONS[name]])
            stamp = entry.crm_id if self._needs_stamp(entry) else None
            change_key = entry.item.change_key if entry.item else (entry.link.change_key if entry.link else "")
            batch.append((self._item_id(entry), change_key, changes, stamp))
        results = self.backend.update_items(plan.folder, batch)
        stale = [e for e, r in zip(entries, results, strict=True) if isinstance(r.error, ItemError) and r.error.stale]
        if stale and retry_stale:
            # The item changed since we read it: read it again and decide once more.
            fresh = {i.item_id: i for i in self.backend.get_items(plan.folder, [self._item_id(e) for e in stale])}
            again = []
            for entry in stale:
                item = fresh.get(self._item_id(entry))
                if item is None:
                    entry.ex, entry.item = d.GONE, None
                else:
                    entry.item = item
                    tracked = isinstance(entry.ex, d.ExchangeSide) and entry.ex.tracked
                    entry.ex = d.ExchangeSide(item.values, tracked, item.modified)
                self.decide_one(plan, entry)
                if entry.decision.update_exchange or self._needs_stamp(entry):
                    again.append(entry)
            if again:
                self._update(plan, again, retry_stale=False)
            stale_set = {id(e) for e in stale}
            entries_results = [(e, r) for e, r in zip(entries, results, strict=True) if id(e) not in stale_set]
            self._record([e for e, _ in entries_results], [r for _, r in entries_results])
            return
        self._record(entries, results)

    def _record(self, entries: list[Entry], results: list[Result]) -> None:
        for entry, result in zip(entries, results, strict=True):
            entry.result = result

    # Commit ------------------------------------------------------------------------------------

    def commit(self, plan: Plan) -> None:
        model = SYNCED_MODELS[plan.record_type]
        new_links, changed_links, dropped, conflicts = [], [], [], []
        for entry in plan.entries.values():
            dec = entry.decision
            if dec is None:
                continue
            if dec.is_noop:
                self._refresh_ids(entry, changed_links)
                continue
            if entry.result is not None and entry.result.error is not None:
                self._fail(plan, entry, entry.result.error, new_links, changed_links)
                continue
            if dec.link == d.DROP:
                if entry.link is not None:
                    dropped.append(entry.link.pk)
                    self._count_drop(entry)
                elif dec.delete_exchange:
                    self.counts["to_exchange"]["deleted"] += 1
                continue
            if dec.link == d.REMOVED:
                link = entry.link
                link.state, link.exchange_id, link.change_key = LinkState.REMOVED_IN_MAILBOX, "", ""
                changed_links.append(link)
                self.counts["removed_in_mailbox"] = self.counts.get("removed_in_mailbox", 0) + 1
                continue
            if not self._write_crm(plan, model, entry):
                # The record changed meanwhile: the next run decides again, reading the item too.
                if entry.item is not None:
                    plan.pending.append(entry.item.item_id)
                continue
            self._save_link(plan, entry, new_links, changed_links)
            if dec.conflicts:
                conflicts.append(self._conflict(plan, entry))
        for ids in _chunks(dropped):
            ItemLink.objects.filter(pk__in=ids).delete()
        ItemLink.objects.bulk_create(new_links, batch_size=500)
        Conflict.objects.bulk_create(conflicts)
        if changed_links:
            ItemLink.objects.bulk_update(changed_links, LINK_FIELDS, batch_size=500)
        state = plan.state
        state.sync_state = plan.new_state
        state.pending = plan.pending
        state.phase = Phase.POLL
        state.last_poll_at = self.now
        state.crm_cursor = plan.cursor
        state.filters_fingerprint = plan.fingerprint
        if plan.full:
            state.last_reconcile_at = self.now

    def _write_crm(self, plan: Plan, model: type[CrmRecord], entry: Entry) -> bool:
        dec = entry.decision
        if dec.create_crm is not None:
            record_id = entry.crm_id
            rec = mapping.new_record(
                model, dec.create_crm, id=record_id, organization=self.mailbox.organization, owner=self.mailbox.user
            )
            if isinstance(rec, Appointment) and entry.item and entry.item.uid:
                rec.ical_uid = entry.item.uid
            rec.save(force_insert=True)
            entry.crm_id, entry.new_record = record_id, rec
            self.counts["to_crm"]["created"] += 1
            return True
        if dec.update_crm:
            rec = entry.record
            changed = mapping.apply_to_record(rec, dec.update_crm)
            if changed:
                values = {name: getattr(rec, name) for name in changed}
                done = model.all_objects.filter(pk=rec.pk, version=rec.version).update(
                    **values, version=F("version") + 1, updated_at=timezone.now()
                )
                if not done:
                    return False
                self.counts["to_crm"]["updated"] += 1
        return True

    def _save_link(self, plan: Plan, entry: Entry, new_links: list, changed_links: list) -> None:
        dec, result = entry.decision, entry.result
        if entry.link is not None:
            entry.old_base = dict(entry.link.base)
        link = self._link_to_write(plan, entry, new_links, changed_links)
        if dec.create_exchange is not None:
            self.counts["to_exchange"]["created"] += 1
        elif dec.update_exchange:
            self.counts["to_exchange"]["updated"] += 1
        if result is not None and result.item_id:
            link.exchange_id, link.change_key = result.item_id, result.change_key
        elif result is not None and result.change_key:
            link.change_key = result.change_key
        elif entry.item is not None:
            link.exchange_id, link.change_key = entry.item.item_id, entry.item.change_key
        crm_hash = dec.crm_hash
        rec = entry.new_record or entry.record
        if rec is not None:
            crm_hash = plan.rules.crm_hash(mapping.crm_values(rec))
        link.crm_hash, link.exchange_hash, link.base = crm_hash, dec.exchange_hash, dec.base
        link.state, link.error_count, link.last_error, link.next_retry_at = LinkState.OK, 0, "", None
        link.last_synced_at = self.now
        if dec.conflicts:
            link.state = LinkState.CONFLICT
        entry.link = link

    def _conflict(self, plan: Plan, entry: Entry) -> Conflict:
        dec = entry.decision
        self.counts["conflicts"] = self.counts.get("conflicts", 0) + 1
        return Conflict(
            mailbox=self.mailbox,
            link=entry.link,
            record_type=plan.record_type,
            crm_id=entry.crm_id,
            fields=sorted(dec.conflicts),
            base={f: entry.old_base.get(f) for f in dec.conflicts},
            crm_values={f: entry.crm.values.get(f) for f in dec.conflicts},
            exchange_values={f: entry.ex.values.get(f) for f in dec.conflicts},
            resolution=dec.conflicts,
            status=ConflictStatus.OPEN,
        )

    def _refresh_ids(self, entry: Entry, changed_links: list) -> None:
        """Nothing to sync, but the item's id or change key moved: remember them."""
        link, item = entry.link, entry.item
        if (
            link is not None
            and item is not None
            and (link.exchange_id, link.change_key) != (item.item_id, item.change_key)
        ):
            link.exchange_id, link.change_key = item.item_id, item.change_key
            changed_links.append(link)

    def _link_to_write(self, plan: Plan, entry: Entry, new_links: list, changed_links: list) -> ItemLink:
        """The entry's link, or a new one, listed for the commit's bulk insert or update."""
        if entry.link is None:
            link = ItemLink(mailbox=self.mailbox, record_type=plan.record_type, crm_id=entry.crm_id)
            new_links.append(link)
            return link
        changed_links.append(entry.link)
        return entry.link

    def _fail(self, plan: Plan, entry: Entry, error: Exception, new_links: list, changed_links: list) -> None:
        link = self._link_to_write(plan, entry, new_links, changed_links)
        if entry.item is not None:  # a failed stamp: the next run finds the item by this link
            link.exchange_id = entry.item.item_id
        link.error_count += 1
        link.last_error = str(error)[:2000]
        link.state = LinkState.QUARANTINED if link.error_count >= QUARANTINE_AFTER else LinkState.ERROR
        self.counts["failed"] += 1
        if link.state == LinkState.QUARANTINED:
            self.counts["quarantined"] = self.counts.get("quarantined", 0) + 1

    def _count_drop(self, entry: Entry) -> None:
        dec = entry.decision
        if dec.delete_exchange:
            self.counts["to_exchange"]["deleted"] += 1
        else:
            self.counts["unlinked"] = self.counts.get("unlinked", 0) + 1


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return True


def _uuids(values: Any) -> list[str]:
    return [v for v in values if _is_uuid(v)]


def _chunks(values: list[str], size: int = 1000) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
