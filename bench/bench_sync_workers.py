"""Benchmark of the workers: 1,000 mailboxes with no changes, synced by 2 RQ worker processes.

Run from the repository root:

    python bench/bench_sync_workers.py [--mailboxes 1000] [--workers 2]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crmsync_bench python bench/bench_sync_workers.py

1. A throwaway database (see bench/_sync_setup.py), ewsim in a process of its own, and
   Redis: REDIS_URL if set (its database is flushed: use a throwaway one), else the
   project's embedded server.
2. N ready mailboxes (users, memberships, default filters; one simulator profile whose
   connection limit exceeds the worker count), each synced once in this process, so the
   measured runs find nothing to do.
3. For each worker class (RQ's default forking Worker, then SimpleWorker): ``enqueue_sync``
   one run per mailbox, start the workers (``manage.py rqworker sync --burst``) and take the
   time until every worker has exited; every run must have succeeded without changes.
   Reported: mailboxes per second over the whole wall time (worker start-up included), and
   over the span from the first run's start to the last run's finish (goal: at least 40/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sync_setup as setup  # noqa: E402

MAILBOXES = 1000
WORKERS = 2
GOAL = 40.0
CLASSES = (
    ("fork (rq.Worker)", None),
    ("fork+gc.freeze", "bench._sync_worker.FrozenGcWorker"),
    ("SimpleWorker", "rq.worker.SimpleWorker"),
)


def start_redis(var_dir: str) -> object | None:
    """The embedded server unless REDIS_URL is set; sets REDIS_URL for Django and the workers."""
    if os.environ.get("REDIS_URL"):
        return None
    from crmsync_portal.lib import embedded_redis

    server = embedded_redis.start(Path(var_dir) / "redis")
    os.environ["REDIS_URL"] = embedded_redis.url(server, db=0)
    return server


def round_of(mailboxes: list, workers: int, worker_class: str | None, log_dir: Path, label: str) -> dict:
    from django.db import connection
    from django.db.models import Count, Max, Min

    from syncjobs.jobs import enqueue_sync
    from syncjobs.models import RunStatus, SyncRun

    started = time.perf_counter()
    runs = [enqueue_sync(mailbox).pk for mailbox in mailboxes]
    enqueue_s = time.perf_counter() - started
    connection.close()
    command = [sys.executable, "manage.py", "rqworker", "sync", "--burst"]
    if worker_class:
        command += ["--worker-class", worker_class]
    setup.log(f"{label}: {len(runs)} runs queued in {enqueue_s:.1f}s; starting {workers} workers")
    log_dir = Path(os.environ.get("BENCH_WORKER_LOGS", log_dir))
    logs = [open(log_dir / f"{label.split()[0].replace('+', '-')}-{n}.log", "w") for n in range(workers)]  # noqa: SIM115
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            command + ["--name", f"bench-{label.split()[0].replace('+', '-').replace('.', '-')}-{n}"],
            cwd=setup.ROOT,
            stdout=out,
            stderr=out,
        )
        for n, out in enumerate(logs)
    ]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - started
    for out in logs:
        out.close()
    if any(codes):
        sys.exit(f"{label}: a worker exited with {codes}; see {log_dir}")
    done = SyncRun.objects.filter(pk__in=runs)
    statuses = dict(done.values_list("status").annotate(n=Count("pk")))
    changed = [r.counts for r in done if any(r.counts.get(k) for k in ("to_exchange", "to_crm", "failed"))]
    span = done.aggregate(first=Min("started_at"), last=Max("finished_at"))
    span_s = (span["last"] - span["first"]).total_seconds() if span["first"] else float("nan")
    inside = statistics.median((r.finished_at - r.started_at).total_seconds() * 1000 for r in done)
    if statuses.get(RunStatus.SUCCEEDED, 0) != len(runs) or changed:
        sys.exit(f"{label}: not every run succeeded without changes: {statuses}, changes in {len(changed)}")
    setup.log(f"{label}: done in {wall:.1f}s ({statuses})")
    return {"runs": len(runs), "enqueue": enqueue_s, "wall": wall, "span": span_s, "inside": inside}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=MAILBOXES, help="mailboxes (default %(default)s)")
    parser.add_argument("--workers", type=int, default=WORKERS, help="worker processes (default %(default)s)")
    args = parser.parse_args()
    with setup.temp_dir() as var_dir:
        redis_server = start_redis(var_dir)
        try:
            vendor = setup.prepare(var_dir)
            from redis import Redis

            Redis.from_url(os.environ["REDIS_URL"]).flushdb()
            with setup.Ewsim() as ewsim:
                org, profile, system = setup.make_org(ewsim.ews_url, max_connections=max(10, args.workers * 5))
                setup.log(f"creating {args.mailboxes} ready mailboxes")
                names = [f"user{i:04d}" for i in range(args.mailboxes)]
                mailboxes = setup.ready_mailboxes(org, profile, system, names, ewsim)
                setup.log("first sync of each mailbox, in this process")
                started = time.perf_counter()
                for n, mailbox in enumerate(mailboxes, 1):
                    run = setup.one_run(mailbox)
                    if run.status != "succeeded":
                        sys.exit(f"first sync of {mailbox.address}: {run.status} {run.error}")
                    if n % 200 == 0:
                        setup.log(f"  {n} synced")
                in_process = (time.perf_counter() - started) / len(mailboxes)
                results = []
                for label, worker_class in CLASSES:
                    results.append((label, round_of(mailboxes, args.workers, worker_class, Path(var_dir), label)))
        finally:
            if redis_server is not None:
                from crmsync_portal.lib import embedded_redis

                embedded_redis.stop(redis_server)

    print(
        f"database: {vendor}; {args.mailboxes:,} mailboxes with no changes, {args.workers} workers "
        f"(`manage.py rqworker sync --burst`); one first-sync in process took {in_process * 1000:.0f} ms per mailbox"
    )
    print(f"load average while measuring: {setup.loadavg()}")
    print(
        f"{'worker class':<18} {'runs':>5} {'enqueue s':>9} {'wall s':>7} {'mbx/s wall':>10} "
        f"{'first→last s':>12} {'mbx/s':>6} {'run_sync ms (median)':>21}"
    )
    for label, r in results:
        print(
            f"{label:<18} {r['runs']:>5} {r['enqueue']:>9.1f} {r['wall']:>7.1f} {r['runs'] / r['wall']:>10.1f} "
            f"{r['span']:>12.1f} {r['runs'] / r['span']:>6.1f} {r['inside']:>21.0f}"
        )
    for label, r in results:
        if r["runs"] / r["wall"] < GOAL:
            print(f"MISSED: {label}: {r['runs'] / r['wall']:.1f} mailboxes/s over the wall time (goal {GOAL:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
