"""Profile health: DOMAIN.md, a profile whose mailboxes fail in large share alerts its owner."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from mailboxes.models import EmailServerProfile, Mailbox
from syncjobs.models import RunStatus, SyncRun

WINDOW = timedelta(hours=1)
ALERT_SHARE = 0.5  # over half of the mailboxes


def with_failing_counts(profiles: QuerySet[EmailServerProfile], now: datetime) -> QuerySet[EmailServerProfile]:
    """The profiles annotated with ``n_mailboxes`` and ``n_failing`` (mailboxes with a failed run that
    finished in the last hour), in the one query of the profiles, whatever their number."""
    failed = SyncRun.objects.filter(
        mailbox=OuterRef("pk"), status=RunStatus.FAILED, finished_at__gt=now - WINDOW, finished_at__lte=now
    )

    def count(mailboxes: QuerySet[Mailbox]) -> Coalesce:
        counted = mailboxes.filter(profile=OuterRef("pk")).order_by().values("profile").annotate(n=Count("pk"))
        return Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), Value(0))

    return profiles.annotate(
        n_mailboxes=count(Mailbox.objects.all()), n_failing=count(Mailbox.objects.filter(Exists(failed)))
    )


def share(n_failing: int, n_mailboxes: int) -> float:
    return n_failing / n_mailboxes if n_mailboxes else 0.0


def failing_share(profile: EmailServerProfile, now: datetime) -> float:
    """The share (0–1) of the profile's mailboxes with a failed run that finished in the last hour."""
    counted = with_failing_counts(EmailServerProfile.objects.filter(pk=profile.pk), now).values_list(
        "n_failing", "n_mailboxes"
    )
    return share(*counted.first() or (0, 0))


def is_failing(share: float) -> bool:
    return share > ALERT_SHARE
