"""Mailboxes in each sync state, runs at chosen times; the engine's simulator fixtures for the hooks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import django_rq
import pytest
from django.utils import timezone
from rq import SimpleWorker

from mailboxes.models import Mailbox, OwnerType, TestStatus
from syncjobs.models import ErrorKind, RunStatus, SyncRun
from tests.conftest import make_mailbox
from tests.syncjobs.conftest import mailbox, sim, simulator  # noqa: F401  (the engine's fixtures)


def queue_mailbox(org: Any, profile: Any, name: str, **fields: Any) -> Mailbox:
    """A queue's mailbox (no user: as many as a test likes), approved."""
    box = make_mailbox(
        org, None, f"{name}@example.com", profile, owner_type=OwnerType.QUEUE, queue_name=name.title(), **fields
    )
    Mailbox.objects.filter(pk=box.pk).update(approval_status="approved")
    box.refresh_from_db()
    return box


def enabled(now: datetime, **fields: Any) -> dict[str, Any]:
    """The fields of a tested mailbox whose ACT channel is enabled, synced a minute ago, due in four."""
    return {
        "test_act": TestStatus.SUCCESS,
        "test_overall": TestStatus.SUCCESS,
        "enabled_act": True,
        "tested_at": now - timedelta(days=1),
        "last_success_at": now - timedelta(minutes=1),
        "next_sync_at": now + timedelta(minutes=4),
        **fields,
    }


def in_each_state(org: Any, profile: Any, now: datetime, suffix: str = "") -> dict[str, Mailbox]:
    """One mailbox per state (two failing: a retried error and a disabled channel); polling every 5 minutes."""
    return {
        "syncing": queue_mailbox(org, profile, f"syncing{suffix}", **enabled(now)),
        "failing": queue_mailbox(
            org,
            profile,
            f"busy{suffix}",
            **enabled(now, consecutive_failures=2, last_error="The server is busy (ErrorServerBusy)."),
        ),
        "disabled_channel": queue_mailbox(
            org,
            profile,
            f"denied{suffix}",
            **enabled(
                now,
                enabled_act=False,
                test_act=TestStatus.FAILURE,
                consecutive_failures=1,
                last_error="HTTP 401: the server refused the credentials.",
                disabled_reason="HTTP 401: the server refused the credentials.",
            ),
        ),
        "stalled": queue_mailbox(
            org,
            profile,
            f"stalled{suffix}",
            **enabled(now, last_success_at=now - timedelta(minutes=16), next_sync_at=now - timedelta(minutes=11)),
        ),
        "never_tested": queue_mailbox(org, profile, f"new{suffix}"),
        "disabled": queue_mailbox(org, profile, f"off{suffix}", is_active=False),
    }


def finished_run(box: Mailbox, at: datetime, status: str = RunStatus.SUCCEEDED, **fields: Any) -> SyncRun:
    if status == RunStatus.FAILED:
        fields.setdefault("error_kind", ErrorKind.TRANSIENT)
    return SyncRun.objects.create(
        mailbox=box, status=status, queued_at=at, started_at=at - timedelta(seconds=5), finished_at=at, **fields
    )


def send_queued_emails() -> None:
    """Run the jobs of RQ's default queue (the alert emails), as a worker does (needs rq_queues)."""
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.fixture
def now() -> datetime:
    return timezone.now()
