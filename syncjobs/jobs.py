"""Creating runs and handing them to RQ: the row is the job, the queue only delivers its id.

``enqueue_sync`` and ``enqueue_test`` create the row and enqueue its id after the
transaction commits; the RQ functions ``sync_job`` and ``test_job`` load the row,
claim it, and do the work. Delivery is at least once: both are idempotent.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import django_rq
from django.db import IntegrityError, transaction
from rq import get_current_job

from audit.log import Actor, record
from mailboxes.models import Channel, Mailbox
from syncjobs.models import RunStatus, SyncRun, TestRun, Trigger

log = logging.getLogger(__name__)

SYNC_QUEUE = "sync"
TEST_QUEUE = "default"


def _enqueue(queue: str, func: Any, object_id: Any, delay: timedelta | None = None, job_id: str = "") -> None:
    def send() -> None:
        q = django_rq.get_queue(queue)
        # The row holds the outcome: RQ keeps no result, and the id is free again at once.
        options = {"job_id": job_id or f"{func.__name__}-{object_id}", "result_ttl": 0}
        if delay:  # needs a worker started --with-scheduler
            q.enqueue_in(delay, func, str(object_id), **options)
        else:
            q.enqueue(func, str(object_id), **options)

    transaction.on_commit(send)


def enqueue_sync(
    mailbox: Mailbox,
    channel: str = Channel.ACT,
    trigger: str = Trigger.SCHEDULE,
    actor: Actor | None = None,
    allow_mass_delete: bool = False,
) -> SyncRun:
    """Queue a run of one mailbox channel; an already queued run of the pair is returned instead.

    A manual run ("Sync now") and a run that confirms the mass-delete guard are audited.
    """
    user = actor.user if actor and actor.user and actor.user.is_authenticated else None
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                mailbox=mailbox,
                channel=channel,
                trigger=trigger,
                requested_by=user,
                allow_mass_delete=allow_mass_delete,
            )
            if actor is not None:
                action = "mailbox.deletes_confirmed" if allow_mass_delete else "mailbox.sync_requested"
                record(actor, action, mailbox, organization=mailbox.organization, changes={"channel": ["", channel]})
            _enqueue(SYNC_QUEUE, sync_job, run.pk)
    except IntegrityError:
        run = SyncRun.objects.get(mailbox=mailbox, channel=channel, status=RunStatus.QUEUED)
        if allow_mass_delete and not run.allow_mass_delete:
            SyncRun.objects.filter(pk=run.pk).update(allow_mass_delete=True)
            run.allow_mass_delete = True
    return run


def requeue(run: SyncRun, delay: timedelta) -> None:
    """Deliver a queued run again later (the profile's connections are all in use, another run of
    its mailbox and channel is running, or its delivery was lost).

    A job cannot deliver its run again under its own id: when it ends, the worker deletes the job
    of that id, the new delivery with it. From its own job, a run is delivered under its other id.
    """
    job_id = f"{sync_job.__name__}-{run.pk}"
    current = get_current_job()
    if current is not None and current.id == job_id:
        job_id += "-again"
    _enqueue(SYNC_QUEUE, sync_job, run.pk, delay, job_id)


def enqueue_test(mailbox: Mailbox, actor: Actor) -> TestRun:
    user = actor.user if actor.user and actor.user.is_authenticated else None
    with transaction.atomic():
        test = TestRun.objects.create(mailbox=mailbox, requested_by=user)
        record(actor, "mailbox.test_requested", mailbox, organization=mailbox.organization)
        _enqueue(TEST_QUEUE, test_job, test.pk)
    return test


def sync_job(run_id: str) -> str:
    from syncjobs.engine import run_sync

    run = run_sync(run_id)
    return run.status if run else "not claimed"


def test_job(test_id: str) -> str:
    from syncjobs.testenable import run_test

    test = run_test(test_id)
    return test.status if test else "not claimed"
