"""Profile health: DOMAIN.md, a profile whose mailboxes fail in large share alerts its owner."""

from __future__ import annotations

from datetime import datetime, timedelta

from mailboxes.models import EmailServerProfile, Mailbox
from syncjobs.models import RunStatus, SyncRun

WINDOW = timedelta(hours=1)
ALERT_SHARE = 0.5  # over half of the mailboxes


def failing_share(profile: EmailServerProfile, now: datetime) -> float:
    """The share (0–1) of the profile's mailboxes with a failed run that finished in the last hour."""
    total = Mailbox.objects.filter(profile=profile).count()
    if not total:
        return 0.0
    failing = (
        SyncRun.objects.filter(
            mailbox__profile=profile, status=RunStatus.FAILED, finished_at__gt=now - WINDOW, finished_at__lte=now
        )
        .values("mailbox_id")
        .distinct()
        .count()
    )
    return failing / total


def is_failing(share: float) -> bool:
    return share > ALERT_SHARE
