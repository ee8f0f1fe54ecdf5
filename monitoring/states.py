"""The sync state of each mailbox, as database conditions: counted and listed in a few queries.

Each mailbox is in exactly one state, the first that holds:

1. **disabled**: not active.
2. **never tested**: no channel enabled and no test run (never, or not since its connection changed).
3. **failing**: its last run failed (``consecutive_failures`` > 0: the run is retried, or the
   mass-delete guard stopped it), or a channel is disabled after a failed test or a permanent error.
4. **stalled**: enabled and due, and no successful run for ``STALL_INTERVALS`` polling intervals
   of its server profile (since it was tested, if it never synced), with no run working on it now.
5. **syncing**: enabled, and the last run went well (or the first is still to come).
6. **disabled**: the rest (tested, but no channel enabled: for example every sync method is None).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from mailboxes.models import Mailbox, TestStatus
from syncjobs.models import HEARTBEAT_STALE, RunStatus, SyncRun

STALL_INTERVALS = 3
DEFAULT_INTERVAL = 5  # minutes: what the engine uses for a mailbox without a profile
CHANNELS = ("incoming", "outgoing", "act")


class MailboxState(models.TextChoices):
    SYNCING = "syncing", _("Syncing")
    FAILING = "failing", _("Failing")
    STALLED = "stalled", _("Stalled")
    NEVER_TESTED = "never_tested", _("Never tested")
    DISABLED = "disabled", _("Disabled")


DESCRIPTIONS = {
    MailboxState.SYNCING: _("Enabled, and the last run went well."),
    MailboxState.FAILING: _("The last run failed, or a channel was disabled after an error."),
    MailboxState.STALLED: _("Enabled and due, but no successful run for three polling intervals."),
    MailboxState.NEVER_TESTED: _("Test & Enable has not run (or not since the connection changed)."),
    MailboxState.DISABLED: _("Not active, or no channel enabled."),
}

ENABLED = Q(enabled_act=True) | Q(enabled_incoming=True) | Q(enabled_outgoing=True)
UNTESTED = Q(test_act=TestStatus.NOT_RUN, test_incoming=TestStatus.NOT_RUN, test_outgoing=TestStatus.NOT_RUN)
FAILED = (
    Q(consecutive_failures__gt=0)
    | Q(test_act=TestStatus.FAILURE)
    | Q(test_incoming=TestStatus.FAILURE)
    | Q(test_outgoing=TestStatus.FAILURE)
)


def _stale(mailboxes: QuerySet[Mailbox], now: datetime) -> Q:
    """No success for STALL_INTERVALS polling intervals of the mailbox's profile, due, nothing running.

    The profiles' intervals differ: one condition per interval in use (one small query).
    """
    intervals = set(mailboxes.order_by().values_list("profile__polling_interval_minutes", flat=True).distinct())
    old = Q(pk__in=[])
    for minutes in intervals:
        cutoff = now - timedelta(minutes=STALL_INTERVALS * (minutes or DEFAULT_INTERVAL))
        interval = Q(profile__isnull=True) if minutes is None else Q(profile__polling_interval_minutes=minutes)
        old |= interval & Q(last_ok__lt=cutoff)
    working = SyncRun.objects.filter(
        mailbox=OuterRef("pk"), status=RunStatus.RUNNING, heartbeat_at__gte=now - HEARTBEAT_STALE
    )
    due = Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now)
    return old & due & ~Q(Exists(working))


def state_conditions(mailboxes: QuerySet[Mailbox], now: datetime) -> dict[str, Q]:
    """{state: condition}; the conditions exclude each other. Use on ``annotated(mailboxes)``."""
    inactive = Q(is_active=False)
    never_tested = ~inactive & UNTESTED & ~ENABLED
    failing = ~inactive & ~never_tested & FAILED
    rest = ~inactive & ~never_tested & ~FAILED
    stale = _stale(mailboxes, now)
    stalled = rest & ENABLED & stale
    syncing = rest & ENABLED & ~stale
    return {
        MailboxState.SYNCING: syncing,
        MailboxState.FAILING: failing,
        MailboxState.STALLED: stalled,
        MailboxState.NEVER_TESTED: never_tested,
        MailboxState.DISABLED: inactive | (rest & ~ENABLED),
    }


def annotated(mailboxes: QuerySet[Mailbox]) -> QuerySet[Mailbox]:
    """The mailboxes with ``last_ok``: the last success, else when tested, else when created."""
    return mailboxes.annotate(last_ok=Coalesce("last_success_at", "tested_at", "created"))


def count_by_state(mailboxes: QuerySet[Mailbox], now: datetime) -> dict[str, int]:
    """{state: number of mailboxes}, in one query (and one for the polling intervals in use)."""
    conditions = state_conditions(mailboxes, now)
    counts = (
        annotated(mailboxes)
        .order_by()
        .aggregate(**{state: Count("pk", filter=condition) for state, condition in conditions.items()})
    )
    return {state: counts[state] or 0 for state in conditions}


def in_state(mailboxes: QuerySet[Mailbox], state: str, now: datetime) -> QuerySet[Mailbox]:
    return annotated(mailboxes).filter(state_conditions(mailboxes, now)[state])


def with_last_run(mailboxes: QuerySet[Mailbox]) -> QuerySet[Mailbox]:
    """Annotated with the error kind and the finish of each mailbox's newest finished run (subqueries)."""
    last = SyncRun.objects.filter(mailbox=OuterRef("pk"), finished_at__isnull=False).order_by("-finished_at")
    return mailboxes.annotate(
        last_run_kind=models.Subquery(last.values("error_kind")[:1]),
        last_run_at=models.Subquery(last.values("finished_at")[:1]),
    )


def stall_minutes(mailbox: Any, now: datetime) -> int:
    """Minutes since the mailbox's last success (or test): for an annotated mailbox."""
    return int((now - mailbox.last_ok).total_seconds() // 60)
