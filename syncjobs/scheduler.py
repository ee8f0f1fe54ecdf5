"""Which mailboxes are due, and handing them to the workers (run by ``manage.py runscheduler``).

Exactly one scheduler process runs. Each tick:
1. marks running runs without a heartbeat failed (worker lost) and queues a fresh run for each;
2. queues a run for every due mailbox (enabled, approved where required, tested, next sync
   reached) that has no queued or running run;
3. delivers again queued runs that no worker took for a while (Redis lost its queue);
4. raises alerts for stalled mailboxes and failing profiles, resolves those whose cause is gone,
   and retries alert emails that failed (monitoring.alerts.check).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from mailboxes.models import ApprovalStatus, Channel, Mailbox, Membership, OwnerType, SyncMethod, TestStatus
from monitoring import alerts
from syncjobs.engine import recover_stale
from syncjobs.jobs import enqueue_sync, requeue
from syncjobs.mail import channel as mail_channel
from syncjobs.models import RunStatus, SyncRun, Trigger

REDELIVER_AFTER = timedelta(minutes=10)
BATCH = 5000


def due_mailboxes(now: datetime) -> QuerySet[Mailbox]:
    approved = (
        Q(approval_status=ApprovalStatus.APPROVED)
        | Q(owner_type=OwnerType.USER, organization__require_approval_user_mailboxes=False)
        | Q(owner_type=OwnerType.QUEUE, organization__require_approval_queue_mailboxes=False)
    )
    active_run = SyncRun.objects.active().filter(mailbox=OuterRef("pk"), channel=Channel.ACT)
    # Only the user's synchronizing organization syncs with the mailbox (Mailbox.in_sync_organization).
    sync_organization = Membership.objects.filter(
        user=OuterRef("user"), organization=OuterRef("organization"), is_sync_organization=True
    )
    return (
        Mailbox.objects.filter(
            approved,
            is_active=True,
            profile__isnull=False,
            user__isnull=False,
            act_method=SyncMethod.SERVER_SIDE,
            test_act=TestStatus.SUCCESS,
            enabled_act=True,
        )
        .exclude(address="")
        .filter(Exists(sync_organization))
        .filter(Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now))
        .exclude(Exists(active_run))
        .select_related("organization")
        .order_by("next_sync_at")
    )


def tick(now: datetime | None = None) -> dict[str, Any]:
    """One pass; returns what it did (for the log and the tests)."""
    now = now or timezone.now()
    lost = recover_stale(now)
    for run in lost:
        enqueue_sync(run.mailbox, run.channel, Trigger.RETRY)
    queued = 0
    for mailbox in due_mailboxes(now)[:BATCH]:
        enqueue_sync(mailbox, Channel.ACT, Trigger.SCHEDULE)
        queued += 1
    queued += mail_channel.schedule(now)  # incoming and outgoing email (syncjobs/mail/channel.py)
    stuck = SyncRun.objects.filter(status=RunStatus.QUEUED, queued_at__lt=now - REDELIVER_AFTER)
    redelivered = 0
    for run in stuck:
        requeue(run, timedelta(0))
        redelivered += 1
    return {"lost": len(lost), "queued": queued, "redelivered": redelivered, **alerts.check(now)}
