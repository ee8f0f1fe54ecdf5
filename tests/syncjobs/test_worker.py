"""The production path: the scheduler queues, a real RQ worker on real Redis runs, the commands report."""

from __future__ import annotations

from io import StringIO
from typing import Any

import django_rq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rq import SimpleWorker

from crm.models import Contact, Task
from syncjobs.models import RunStatus, SyncRun
from tests.syncjobs.conftest import items

pytestmark = pytest.mark.django_db(transaction=True)


def work(queue: str = "sync") -> None:
    q = django_rq.get_queue(queue)
    SimpleWorker([q], connection=q.connection).work(burst=True)


def test_the_scheduler_queues_a_due_mailbox_and_a_worker_syncs_it(
    rq_queues: str, mailbox: Any, org: Any, alice: Any, sim: Any
) -> None:
    Contact.objects.create(organization=org, owner=alice, first_name="Ann", last_name="Lee")
    out = StringIO()
    call_command("runscheduler", "--once", stdout=out)
    [run] = SyncRun.objects.all()
    assert run.status == RunStatus.QUEUED
    call_command("runscheduler", "--once", stdout=out)
    assert SyncRun.objects.count() == 1  # one job per mailbox and channel
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.worker and run.heartbeat_at and run.finished_at
    assert len(items(sim, "contacts")) == 1
    mailbox.refresh_from_db()
    assert mailbox.next_sync_at > run.finished_at
    call_command("runscheduler", "--once", stdout=out)
    assert SyncRun.objects.count() == 1  # not due again before the polling interval


def test_sync_mailbox_prints_what_it_did(mailbox: Any, org: Any, alice: Any, sim: Any) -> None:
    Task.objects.create(organization=org, owner=alice, subject="Call")
    out = StringIO()
    call_command("sync_mailbox", "alice@example.com", stdout=out)
    assert "Succeeded" in out.getvalue()
    assert "CRM → mailbox: 1 created" in out.getvalue()


def test_sync_mailbox_fails_with_the_reason(mailbox: Any, sim: Any) -> None:
    sim.control.add_fault("*", http_status=503)
    with pytest.raises(CommandError, match="The run failed: .*503|The run failed"):
        call_command("sync_mailbox", "alice@example.com", stdout=StringIO())
    with pytest.raises(CommandError, match="No mailbox"):
        call_command("sync_mailbox", "nobody@example.com", stdout=StringIO())


def test_sync_mailbox_refuses_while_another_run_holds_the_mailbox(mailbox: Any, sim: Any) -> None:
    from django.utils import timezone

    now = timezone.now()
    SyncRun.objects.create(mailbox=mailbox, status=RunStatus.RUNNING, started_at=now, heartbeat_at=now)
    with pytest.raises(CommandError, match="Another run"):
        call_command("sync_mailbox", "alice@example.com", stdout=StringIO())


def test_a_run_names_only_the_counts_that_are_not_zero() -> None:
    run = SyncRun(counts={"to_exchange": {"created": 2}, "unlinked": 0, "conflicts": 1, "failed": 3})
    assert [(str(label), n) for label, n in run.other_counts()] == [("conflicts", 1), ("failed", 3)]
