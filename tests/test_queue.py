"""The queue runs on a real Redis: the embedded server, or REDIS_URL in CI."""

from __future__ import annotations

import django_rq
from rq import SimpleWorker


def add(a: int, b: int) -> int:
    return a + b


def test_a_job_runs_on_the_real_queue(rq_queues: str) -> None:
    queue = django_rq.get_queue("default")
    job = queue.enqueue(add, 2, 3)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.is_finished
    assert job.return_value() == 5
