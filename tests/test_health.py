"""/healthz, /readyz and /metrics: what load balancers and Prometheus get, on real Redis and a
real database, each readiness check failing in turn for real (no worker, a stale scheduler,
Redis on a closed port, the database away)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Queue, SimpleWorker
from rq.utils import utcformat

from crmsync_portal import health
from crmsync_portal.management.commands.runportal import free_port
from mailboxes.models import Mailbox
from syncjobs.models import RunStatus, SyncRun
from tests.conftest import client_for, make_user

# The demo's fixtures: portal starts ``manage.py runportal`` (it needs portal_env).
from tests.test_runportal import READY_TIMEOUT, portal, portal_env, wait_until_ready  # noqa: F401


@pytest.fixture
def redis(rq_queues: str) -> Iterator[Redis]:
    connection = Redis.from_url(rq_queues)
    yield connection
    connection.close()


@pytest.fixture
def worker(redis: Redis) -> Iterator[SimpleWorker]:
    """A real RQ worker registered in the test Redis, as ``rqworker`` registers itself (it runs no job)."""
    worker = SimpleWorker(["default", "sync"], connection=redis)
    worker.register_birth()
    yield worker
    worker.register_death()


@pytest.fixture
def scheduler(redis: Redis, db: Any) -> None:
    """The heartbeat a scheduler pass leaves, just now."""
    health.scheduler_beat(redis, 60)


def readyz() -> tuple[int, dict[str, Any]]:
    response = Client().get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    return response.status_code, response.json()


def states(body: dict[str, Any]) -> dict[str, str]:
    return {name: check["status"] for name, check in body["checks"].items()}


def closed_port() -> int:
    """A local port nothing listens on (bound and released)."""
    return free_port()


def point_redis_at(settings: Any, url: str) -> None:
    settings.RQ_QUEUES = {name: {**conf, "URL": url} for name, conf in settings.RQ_QUEUES.items()}


# /healthz -----------------------------------------------------------------------------------


def test_healthz_answers_ok_without_the_database_or_redis(settings: Any) -> None:
    # No database mark: any query would raise. Redis points at a closed port.
    point_redis_at(settings, f"redis://127.0.0.1:{closed_port()}/0")
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]
    assert Client().head("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_the_endpoints_refuse_other_methods(path: str) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post(path).status_code == 405
    assert client.put(path).status_code == 405


def test_the_probes_are_not_sent_to_https_but_metrics_is(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    response = client.get("/metrics")
    assert response.status_code == 301
    assert response.url.startswith("https://")


# /readyz ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the scheduler closes its database connection before a pass
def test_readyz_passes_with_a_live_worker_and_a_scheduler_pass(worker: SimpleWorker) -> None:
    call_command("runscheduler", "--once")
    status, body = readyz()
    assert status == 200, body
    assert body["status"] == "ok"
    assert states(body) == {"database": "ok", "redis": "ok", "worker": "ok", "scheduler": "ok"}
    assert body["checks"]["worker"]["detail"].startswith("1 of 1 workers alive")
    assert body["checks"]["scheduler"]["detail"].startswith("last pass ")
    assert "stale after 180 s" in body["checks"]["scheduler"]["detail"]
    assert 0 <= body["checks"]["scheduler"]["age_seconds"] < 180


def test_readyz_fails_without_a_worker(scheduler: None) -> None:
    status, body = readyz()
    assert status == 503
    assert body["status"] == "fail"
    assert states(body) == {"database": "ok", "redis": "ok", "worker": "fail", "scheduler": "ok"}
    assert body["checks"]["worker"]["detail"] == "no worker registered"


def test_readyz_fails_when_the_only_worker_stopped_beating(worker: SimpleWorker, redis: Redis, scheduler: None) -> None:
    redis.hset(worker.key, "last_heartbeat", utcformat(timezone.now() - timedelta(minutes=5)))
    status, body = readyz()
    assert status == 503
    assert states(body)["worker"] == "fail"
    assert body["checks"]["worker"]["detail"].startswith("0 of 1 workers alive")
    assert body["checks"]["worker"]["age_seconds"] >= 300


def test_a_simple_worker_counts_while_its_sync_run_beats(
    worker: SimpleWorker, redis: Redis, scheduler: None, alice_mailbox: Mailbox
) -> None:
    """A simple worker does not beat RQ's heartbeat during a job; the run it works on does."""
    redis.hset(worker.key, "last_heartbeat", utcformat(timezone.now() - timedelta(minutes=5)))
    now = timezone.now()
    run = SyncRun.objects.create(
        mailbox=alice_mailbox,
        status=RunStatus.RUNNING,
        started_at=now - timedelta(minutes=10),
        heartbeat_at=now,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    assert readyz()[0] == 200
    SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=now - timedelta(minutes=3))
    assert states(readyz()[1])["worker"] == "fail"


def test_readyz_fails_when_the_scheduler_missed_two_passes(worker: SimpleWorker, redis: Redis, db: Any) -> None:
    health.scheduler_beat(redis, 60, at=timezone.now() - timedelta(minutes=4))
    status, body = readyz()
    assert status == 503
    assert states(body) == {"database": "ok", "redis": "ok", "worker": "ok", "scheduler": "fail"}
    assert body["checks"]["scheduler"]["detail"].startswith("last pass 240 s ago")
    # A scheduler with a longer interval is allowed two of its own passes and a minute.
    health.scheduler_beat(redis, 300, at=timezone.now() - timedelta(minutes=4))
    assert readyz()[0] == 200


def test_readyz_fails_when_no_scheduler_ever_ran(worker: SimpleWorker, db: Any) -> None:
    status, body = readyz()
    assert status == 503
    assert states(body)["scheduler"] == "fail"
    assert "is runscheduler running?" in body["checks"]["scheduler"]["detail"]


def test_readyz_fails_when_redis_does_not_answer(settings: Any, db: Any) -> None:
    port = closed_port()
    url = f"redis://:redis-secret@127.0.0.1:{port}/0"
    point_redis_at(settings, url)
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert states(body) == {"database": "ok", "redis": "fail", "worker": "fail", "scheduler": "fail"}
    assert body["checks"]["redis"]["detail"] == "ConnectionError (details in the server log)"
    assert body["checks"]["worker"]["detail"] == "not checked: Redis does not answer"
    # Nothing of the connection: no address, port or password.
    assert "redis-secret" not in response.text and str(port) not in response.text and "127.0.0.1" not in response.text


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_when_the_database_does_not_answer(
    worker: SimpleWorker, redis: Redis, tmp_path: Path, settings: Any
) -> None:
    health.scheduler_beat(redis, 60)
    # The database away: SQLite's file in a directory that does not exist; PostgreSQL on a closed port.
    unreachable = (
        {"NAME": str(tmp_path / "gone" / "db.sqlite3")} if connection.vendor == "sqlite" else {"PORT": closed_port()}
    )
    saved = {key: connection.settings_dict[key] for key in unreachable}
    connection.close()
    connection.settings_dict.update(unreachable)
    try:
        status, body = readyz()
    finally:
        connection.close()
        connection.settings_dict.update(saved)
    assert status == 503
    assert states(body) == {"database": "fail", "redis": "ok", "worker": "ok", "scheduler": "ok"}
    assert body["checks"]["database"]["detail"] == "OperationalError (details in the server log)"
    assert readyz()[0] == 200  # back once the database answers


# /metrics -----------------------------------------------------------------------------------


@pytest.fixture
def staff(db: Any) -> Any:
    return make_user("staff", is_staff=True)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_runs_the_queues_and_the_workers(
    staff: Any, worker: SimpleWorker, redis: Redis, alice_mailbox: Mailbox, bob: Any
) -> None:
    now = timezone.now()

    def run(status: str, seconds: float, finished_ago: timedelta = timedelta(minutes=5), **counts: Any) -> None:
        finished = now - finished_ago
        SyncRun.objects.create(
            mailbox=alice_mailbox,
            status=status,
            started_at=finished - timedelta(seconds=seconds),
            finished_at=finished,
            counts=counts,
        )

    run(RunStatus.SUCCEEDED, 10, to_exchange={"created": 3, "updated": 1}, to_crm={"created": 2}, failed=0)
    run(RunStatus.FAILED, 200, to_exchange={"deleted": 1}, failed=1)
    run(RunStatus.PARTIAL, 50, timedelta(days=2), to_exchange={"created": 100})  # before the last 24 hours
    SyncRun.objects.create(mailbox=alice_mailbox, status=RunStatus.QUEUED)
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(consecutive_failures=2)
    for n in range(2):
        Queue("sync", connection=redis).enqueue("syncjobs.jobs.sync_job", f"run-{n}")
    health.scheduler_beat(redis, 60, at=now)

    response = client_for(staff).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    got = samples(response.content.decode())

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("crmsync_sync_runs_total", channel="act", status="succeeded") == 1
    assert value("crmsync_sync_runs_total", channel="act", status="failed") == 1
    assert value("crmsync_sync_runs_total", channel="act", status="partial") == 1
    assert value("crmsync_sync_runs_active", channel="act", status="queued") == 1
    # Duration: the two runs of the last 24 hours, 10 s and 200 s.
    buckets = {
        le: value("crmsync_sync_run_duration_seconds_bucket", le=le) for le in ("5.0", "15.0", "120.0", "300.0", "+Inf")
    }
    assert buckets == {"5.0": 0, "15.0": 1, "120.0": 1, "300.0": 2, "+Inf": 2}
    assert value("crmsync_sync_run_duration_seconds_gcount") == 2
    assert value("crmsync_sync_run_duration_seconds_gsum") == pytest.approx(210)
    assert value("crmsync_sync_items_last_day", direction="to_exchange", action="created") == 3
    assert value("crmsync_sync_items_last_day", direction="to_exchange", action="updated") == 1
    assert value("crmsync_sync_items_last_day", direction="to_exchange", action="deleted") == 1
    assert value("crmsync_sync_items_last_day", direction="to_crm", action="created") == 2
    assert value("crmsync_sync_items_last_day", direction="to_crm", action="deleted") == 0
    assert value("crmsync_mailboxes_failing") == 1
    assert value("crmsync_queue_jobs", queue="sync") == 2
    assert value("crmsync_queue_jobs", queue="default") == 0
    assert value("crmsync_workers") == 1
    assert value("crmsync_redis_up") == 1
    assert value("crmsync_scheduler_last_pass_timestamp_seconds") == pytest.approx(now.timestamp())


def test_the_runs_by_outcome_are_counted_from_an_index(db: Any) -> None:
    """/metrics groups every run by channel and status at each scrape: an index holds both."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, SyncRun._meta.db_table)
    assert any(c["index"] and c["columns"] == ["channel", "status"] for c in constraints.values())


def test_metrics_answer_without_redis(staff: Any, settings: Any) -> None:
    point_redis_at(settings, f"redis://127.0.0.1:{closed_port()}/0")
    response = client_for(staff).get("/metrics")
    assert response.status_code == 200
    got = samples(response.content.decode())
    assert got[("crmsync_redis_up", ())] == 0
    assert ("crmsync_workers", ()) not in got
    assert got[("crmsync_sync_run_duration_seconds_gcount", ())] == 0


TOKEN = "a-long-random-metrics-token"


@pytest.mark.parametrize(
    ("who", "authorization", "expected"),
    [
        ("anonymous", "", 403),
        ("alice", "", 403),  # signed in, not staff
        ("staff", "", 200),
        ("anonymous", f"Bearer {TOKEN}", 200),
        ("anonymous", f"bearer {TOKEN}", 200),
        ("anonymous", "Bearer not-the-token", 401),
        ("anonymous", f"Basic {TOKEN}", 401),
        ("alice", "Bearer not-the-token", 401),
    ],
)
def test_metrics_are_for_staff_or_the_token(
    request: pytest.FixtureRequest, settings: Any, rq_queues: str, db: Any, who: str, authorization: str, expected: int
) -> None:
    settings.METRICS_TOKEN = TOKEN
    client = Client() if who == "anonymous" else client_for(request.getfixturevalue(who))
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == expected
    if expected == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics", error="invalid_token"'
    if expected != 200:
        assert b"crmsync_" not in response.content


def test_no_token_works_when_metrics_token_is_unset(settings: Any, rq_queues: str, db: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_heartbeat_says_how_often_it_passes(redis: Redis) -> None:
    call_command("runscheduler", "--once", "--interval", "30")
    at, interval = health.scheduler_last_beat(redis)  # type: ignore[misc]
    assert interval == 30
    assert 0 <= (timezone.now() - at).total_seconds() < 60
    assert 0 < redis.ttl(health.SCHEDULER_KEY) <= health.SCHEDULER_KEY_TTL.total_seconds()


# The demo ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_answers_healthy_and_ready(request: pytest.FixtureRequest) -> None:
    """The README's run command: once the demo is up, /healthz and /readyz pass (worker, scheduler and all)."""
    proc, port, out, err = request.getfixturevalue("portal")
    wait_until_ready(proc, port, out, err)
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    deadline = time.monotonic() + READY_TIMEOUT
    while (response := requests.get(f"{base}/readyz", timeout=10)).status_code != 200:
        assert time.monotonic() < deadline, response.text
        with pytest.raises(subprocess.TimeoutExpired):  # the poll interval, and a check that it still runs
            proc.wait(timeout=0.5)
    assert states(response.json()) == {"database": "ok", "redis": "ok", "worker": "ok", "scheduler": "ok"}
