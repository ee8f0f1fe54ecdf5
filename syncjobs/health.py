"""Profile health: DOMAIN.md, a profile whose mailboxes fail in large share alerts its owner."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet

from mailboxes.models import EmailServerProfile, Mailbox
from syncjobs.models import RunStatus, SyncRun

WINDOW = timedelta(hours=1)
ALERT_SHARE = 0.5  # over half of the mailboxes


def failing_counts(profiles: QuerySet[EmailServerProfile], now: datetime) -> dict[Any, tuple[int, int]]:
    """{profile id: (its mailboxes with a failed run that finished in the last hour, its mailboxes)}
    for those of the profiles with such a mailbox: two grouped queries, each read once, whatever the
    number of profiles, mailboxes and runs."""
    failing = dict(
        SyncRun.objects.filter(
            status=RunStatus.FAILED,
            finished_at__gt=now - WINDOW,
            finished_at__lte=now,
            mailbox__profile__in=profiles,
        )
        .order_by()
        .values_list("mailbox__profile")
        .annotate(n=Count("mailbox", distinct=True))
    )
    if not failing:
        return {}
    totals = dict(
        Mailbox.objects.filter(profile__in=list(failing)).order_by().values_list("profile").annotate(n=Count("pk"))
    )
    return {pk: (n, totals[pk]) for pk, n in failing.items()}


def share(n_failing: int, n_mailboxes: int) -> float:
    return n_failing / n_mailboxes if n_mailboxes else 0.0


def failing_share(profile: EmailServerProfile, now: datetime) -> float:
    """The share (0–1) of the profile's mailboxes with a failed run that finished in the last hour."""
    counts = failing_counts(EmailServerProfile.objects.filter(pk=profile.pk), now)
    return share(*counts.get(profile.pk, (0, 0)))


def is_failing(share: float) -> bool:
    return share > ALERT_SHARE
