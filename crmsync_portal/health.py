"""Health endpoints for operators and load balancers (README: Health checks and metrics).

- ``/healthz``: liveness. The process answers; no database, no Redis.
- ``/readyz``: readiness. The database answers, Redis answers, a worker beat within 2 minutes and
  the scheduler made a pass recently: 200 when all pass, 503 otherwise, with each check in JSON.
- ``/metrics``: Prometheus text, read from the database and Redis at scrape time, for staff
  (signed in) or a bearer token equal to METRICS_TOKEN.

Public output names no host, address or error text (the server's log has those).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.db import connection
from django.db.models import Count, F, FloatField, Func, IntegerField, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from rq import Queue, Worker

from mailboxes.models import Mailbox
from syncjobs.models import RunStatus, SyncRun

log = logging.getLogger(__name__)

# Each Redis command (and the connect) gives up after this: a probe never hangs on Redis.
REDIS_TIMEOUT = 2.0
# A worker counts as alive when it beat within this (README: run workers with --worker-ttl 60).
WORKER_FRESH = timedelta(minutes=2)
SCHEDULER_KEY = "crmsync:scheduler:heartbeat"
# The scheduler's heartbeat is kept this long, so that /readyz can say how long ago the last pass was.
SCHEDULER_KEY_TTL = timedelta(days=1)
# Run duration and items synced: over the runs that finished within this window.
WINDOW = timedelta(days=1)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)
ITEM_COUNTS = [(d, a) for d in ("to_exchange", "to_crm") for a in ("created", "updated", "deleted")]


def redis_connection() -> Redis:
    """The Redis connection django-rq uses for the queues, with short timeouts (the one seam to Redis
    here). Close it with ``.close()``."""
    redis = django_rq.get_connection("default")
    redis.connection_pool.connection_kwargs.update(socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    return redis


# The scheduler's heartbeat ------------------------------------------------------------------


def scheduler_beat(redis: Redis, interval: float, at: datetime | None = None) -> None:
    """Record a scheduler pass: when, and how often passes come (runscheduler after each pass)."""
    at = at or timezone.now()
    value = json.dumps({"at": at.timestamp(), "interval": interval})
    redis.set(SCHEDULER_KEY, value, ex=int(SCHEDULER_KEY_TTL.total_seconds()))


def scheduler_last_beat(redis: Redis) -> tuple[datetime, float] | None:
    """When the scheduler last made a pass, and its interval in seconds; None if unknown."""
    raw = redis.get(SCHEDULER_KEY)
    if raw is None:
        return None
    beat = json.loads(raw)
    return datetime.fromtimestamp(beat["at"], tz=UTC), float(beat["interval"])


def scheduler_stale_after(interval: float) -> timedelta:
    """Two passes missed, and a minute for a slow pass: 3 minutes at the default 60 s."""
    return timedelta(seconds=2 * interval + 60)


# Readiness checks ---------------------------------------------------------------------------


@dataclass
class Check:
    ok: bool
    detail: str
    age_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = "ok" if data.pop("ok") else "fail"
        if self.age_seconds is None:
            del data["age_seconds"]
        else:
            data["age_seconds"] = round(self.age_seconds, 1)
        return data


def _failed(name: str, exc: Exception) -> Check:
    log.warning("Readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
    return Check(False, f"{type(exc).__name__} (details in the server log)")


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _failed("database", exc)
    return Check(True, f"{connection.vendor} answered")


def check_redis(redis: Redis) -> Check:
    try:
        redis.ping()
    except Exception as exc:
        return _failed("redis", exc)
    return Check(True, "answered PING")


def check_worker(redis: Redis, now: datetime) -> Check:
    """At least one RQ worker beat within 2 minutes.

    A simple worker (rq.worker.SimpleWorker, the README's) does not beat while it runs a job: it
    counts while the sync run it works on beats (SyncRun.heartbeat_at, the engine's heartbeat).
    """
    try:
        workers = Worker.all(connection=redis)
    except Exception as exc:
        return _failed("worker", exc)
    if not workers:
        return Check(False, "no worker registered")
    ages = [(now - w.last_heartbeat).total_seconds() for w in workers if w.last_heartbeat]
    freshest = min(ages, default=None)
    alive = sum(1 for age in ages if age <= WORKER_FRESH.total_seconds())
    if not alive:
        running = _workers_with_fresh_runs(now)
        alive = sum(1 for w in workers if f"{w.hostname}:{w.pid}" in running)
    detail = f"{alive} of {len(workers)} workers alive (heartbeat within {WORKER_FRESH.total_seconds():.0f} s)"
    return Check(alive > 0, detail, freshest)


def _workers_with_fresh_runs(now: datetime) -> set[str]:
    try:
        runs = SyncRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__gte=now - WORKER_FRESH)
        return set(runs.values_list("worker", flat=True))
    except Exception:  # the database check reports it
        return set()


def check_scheduler(redis: Redis, now: datetime) -> Check:
    try:
        beat = scheduler_last_beat(redis)
    except Exception as exc:
        return _failed("scheduler", exc)
    if beat is None:
        return Check(False, f"no pass within {SCHEDULER_KEY_TTL.days} day(s): is runscheduler running?")
    at, interval = beat
    age = (now - at).total_seconds()
    stale_after = scheduler_stale_after(interval).total_seconds()
    detail = f"last pass {age:.0f} s ago (a pass every {interval:g} s; stale after {stale_after:.0f} s)"
    return Check(age <= stale_after, detail, age)


def readiness() -> dict[str, Check]:
    """Each check; Redis is asked only once it answered (a lost Redis costs one timeout, not three)."""
    now = timezone.now()
    checks = {"database": check_database()}
    redis = redis_connection()
    try:
        checks["redis"] = check_redis(redis)
        if checks["redis"].ok:
            checks["worker"] = check_worker(redis, now)
            checks["scheduler"] = check_scheduler(redis, now)
        else:
            checks["worker"] = checks["scheduler"] = Check(False, "not checked: Redis does not answer")
    finally:
        redis.close()
    return checks


# Metrics ------------------------------------------------------------------------------------


class PortalCollector:
    """The portal's metrics, read at scrape time with a few aggregate queries (no per-mailbox work)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from run_metrics(now)
        yield GaugeMetricFamily(
            "crmsync_mailboxes_failing",
            "Active mailboxes whose last sync run failed (consecutive failures > 0).",
            value=Mailbox.objects.filter(is_active=True, consecutive_failures__gt=0).count(),
        )
        yield from redis_metrics()


class SecondsBetween(Func):
    """``end - start`` in seconds, computed by the database. (Django's own datetime subtraction calls
    Python once per row on SQLite: 40 s instead of 4 for a day's 280,000 runs on a busy machine.)"""

    arity = 2
    arg_joiner = " - "
    # date_part, a double; EXTRACT returns a numeric on PostgreSQL 14+, which costs a third more here.
    template = "date_part('epoch', %(expressions)s)"
    output_field = FloatField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "((julianday(%(expressions)s)) * 86400.0)"
        return self.as_sql(compiler, connection, template=template, arg_joiner=") - julianday(", **extra)


def run_metrics(now: datetime) -> Iterator[Metric]:
    totals = CounterMetricFamily(
        "crmsync_sync_runs", "Finished sync runs by outcome, since the first run.", labels=["channel", "status"]
    )
    active = GaugeMetricFamily(
        "crmsync_sync_runs_active", "Sync runs waiting for a worker or running.", labels=["channel", "status"]
    )
    by_outcome = SyncRun.objects.order_by().values_list("channel", "status").annotate(n=Count("id"))
    for channel, status, n in by_outcome:
        (totals if status in FINISHED else active).add_metric([channel, status], n)
    yield totals
    yield active

    finished = (
        SyncRun.objects.order_by()
        .filter(status__in=FINISHED, finished_at__gte=now - WINDOW, started_at__isnull=False)
        .annotate(seconds=SecondsBetween(F("finished_at"), F("started_at")))
    )
    buckets = {f"le_{b}": Count("id", filter=Q(seconds__lte=b)) for b in DURATION_BUCKETS}
    items = {f"{d}_{a}": Coalesce(Sum(Cast(KT(f"counts__{d}__{a}"), IntegerField())), 0) for d, a in ITEM_COUNTS}
    agg = finished.aggregate(count=Count("id"), total=Coalesce(Sum("seconds"), 0.0), **buckets, **items)
    histogram = GaugeHistogramMetricFamily(
        "crmsync_sync_run_duration_seconds",
        "Duration of the sync runs that finished in the last 24 hours (started to finished).",
        buckets=[(str(float(b)), agg[f"le_{b}"]) for b in DURATION_BUCKETS] + [("+Inf", agg["count"])],
        gsum_value=agg["total"],
    )
    yield histogram
    synced = GaugeMetricFamily(
        "crmsync_sync_items_last_day",
        "Items the sync runs that finished in the last 24 hours wrote, by direction and action.",
        labels=["direction", "action"],
    )
    for d, a in ITEM_COUNTS:
        synced.add_metric([d, a], agg[f"{d}_{a}"])
    yield synced


def queue_depths(redis: Redis) -> tuple[dict[str, int], int]:
    """({queue: jobs waiting}, workers registered): for /metrics and the monitoring page."""
    return {name: Queue(name, connection=redis).count for name in settings.RQ_QUEUES}, Worker.count(connection=redis)


def redis_metrics() -> Iterator[Metric]:
    redis = redis_connection()
    try:
        depths, workers = queue_depths(redis)
        beat = scheduler_last_beat(redis)
    except Exception as exc:
        log.warning("Metrics: Redis failed: %s: %s", type(exc).__name__, exc)
        yield GaugeMetricFamily("crmsync_redis_up", "Whether Redis answered this scrape.", value=0)
        return
    finally:
        redis.close()
    yield GaugeMetricFamily("crmsync_redis_up", "Whether Redis answered this scrape.", value=1)
    queue = GaugeMetricFamily("crmsync_queue_jobs", "Jobs waiting in each RQ queue.", labels=["queue"])
    for name, depth in depths.items():
        queue.add_metric([name], depth)
    yield queue
    yield GaugeMetricFamily("crmsync_workers", "RQ workers registered in Redis.", value=workers)
    if beat:
        yield GaugeMetricFamily(
            "crmsync_scheduler_last_pass_timestamp_seconds",
            "When the scheduler last finished a pass (Unix time).",
            value=beat[0].timestamp(),
        )


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(PortalCollector())  # type: ignore[arg-type]  # a collector needs only collect()


# Views --------------------------------------------------------------------------------------


@csrf_exempt
@require_safe
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@csrf_exempt
@require_safe
@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness()
    ok = all(check.ok for check in checks.values())
    body = {"status": "ok" if ok else "fail", "checks": {name: check.as_json() for name, check in checks.items()}}
    return JsonResponse(body, status=200 if ok else 503)


@csrf_exempt
@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """For staff signed in, or ``Authorization: Bearer <METRICS_TOKEN>``: anyone else 403, a wrong token 401."""
    if not (request.user.is_authenticated and request.user.is_staff):
        header = request.headers.get("Authorization", "")
        if not header:
            return HttpResponse("Staff or a metrics token only.\n", status=403, content_type="text/plain")
        if not _token_matches(header):
            response = HttpResponse("Invalid metrics token.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics", error="invalid_token"'
            return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _token_matches(header: str) -> bool:
    scheme, _, token = header.partition(" ")
    expected = settings.METRICS_TOKEN
    return (
        bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())
    )
