"""Benchmark of a no-change sync run: EWS requests, SQL queries and time at 100 and 10,000 contacts.

Run from the repository root:

    python bench/bench_sync_nochange.py              # throwaway SQLite database
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crmsync_bench python bench/bench_sync_nochange.py

1. A throwaway database (see bench/_sync_setup.py) and ewsim in a process of its own.
2. Per size, a ready mailbox whose user owns that many CRM contacts (last changed a day ago).
3. Runs until every contact is linked, one more warm-up run, then one measured run:
   the EWS requests by operation (ewsim's request log), the SQL queries
   (CaptureQueriesContext) and the wall time; then the median of RUNS more for the time.
Goals (SYNC.md): exactly one SyncFolderItems per folder (3) and nothing else; the same
number of queries at both sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sync_setup as setup  # noqa: E402

SIZES = (100, 10_000)
RUNS = 5


def measure(ewsim: setup.Ewsim, mailbox: object, runs: int) -> tuple[Counter, int, float, float, list[dict], float]:
    """(EWS ops, queries, first ms, median ms, the queries with their times, EWS server ms) of no-change runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queued = setup.new_run(mailbox)
    ewsim.control.clear_requests()
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        run = setup.one_run(mailbox, queued)
        first = (time.perf_counter() - started) * 1000
    log = ewsim.control.requests()
    ops = Counter(r["operation"] for r in log)
    server_ms = sum(r["duration_ms"] for r in log)
    if run.status != "succeeded" or any(run.counts.get(k) for k in ("to_exchange", "to_crm", "failed")):
        sys.exit(f"not a no-change run: {run.status} {run.counts} {run.error}")
    times = [first]
    for _ in range(runs):
        queued = setup.new_run(mailbox)
        started = time.perf_counter()
        setup.one_run(mailbox, queued)
        times.append((time.perf_counter() - started) * 1000)
    return ops, len(captured), first, statistics.median(times), captured.captured_queries, server_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="contacts per mailbox (default %(default)s)")
    parser.add_argument("--show-sql", action="store_true", help="print the measured run's queries")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with setup.temp_dir() as var_dir:
        vendor = setup.prepare(var_dir)
        from crm.models import Contact
        from syncjobs.models import ItemLink

        with setup.Ewsim() as ewsim:
            org, profile, system = setup.make_org(ewsim.ews_url)
            rows, sqls = [], {}
            for size in sizes:
                [mailbox] = setup.ready_mailboxes(org, profile, system, [f"user{size}"], ewsim)
                setup.add_contacts(mailbox, size)
                setup.log(f"{size} contacts: syncing until linked")
                for attempt in range(5):
                    started = time.perf_counter()
                    run = setup.one_run(mailbox)
                    linked = ItemLink.objects.filter(mailbox=mailbox).exclude(exchange_id="").count()
                    setup.log(f"  run {attempt + 1}: {run.status} {run.counts} in {time.perf_counter() - started:.1f}s")
                    if linked == Contact.objects.filter(owner=mailbox.user).count():
                        break
                else:
                    sys.exit(f"{size}: not all contacts linked after 5 runs ({linked})")
                setup.one_run(mailbox)  # warm-up
                setup.log(f"{size} contacts: measuring")
                ops, queries, first, median, sql, server_ms = measure(ewsim, mailbox, RUNS)
                sql_ms = sum(float(q["time"]) for q in sql) * 1000
                rows.append((size, ops, queries, first, median, sql_ms, server_ms))
                sqls[size] = sql

    print(
        f"database: {vendor}; one no-change run_sync of one mailbox (contacts linked, nothing changed); "
        f"SQL = queries of run_sync on the run row; median of {RUNS + 1} runs"
    )
    print(f"load average: {setup.loadavg()}")
    print(
        f"{'contacts':>8}  {'EWS requests':<24} {'SQL':>4} {'first ms':>9} {'median ms':>10} "
        f"{'SQL ms':>7} {'EWS server ms':>13}"
    )
    for size, ops, queries, first, median, sql_ms, server_ms in rows:
        print(
            f"{size:>8,}  {setup.fmt_ops(ops):<24} {queries:>4} {first:>9.1f} {median:>10.1f} "
            f"{sql_ms:>7.1f} {server_ms:>13.1f}"
        )
    for size, sql in sqls.items():
        print(f"slowest queries at {size:,} contacts (first measured run):")
        for q in sorted(sql, key=lambda q: -float(q["time"]))[:3]:
            print(f"  {float(q['time']) * 1000:7.1f} ms  {q['sql'][:150]}")
    if args.show_sql:
        for size, sql in sqls.items():
            print(f"\n-- {size} contacts: {len(sql)} queries")
            for q in sql:
                print("  " + q["sql"][:300])
    notes = []
    for size, ops, *_ in rows:
        if ops != Counter({"SyncFolderItems": 3}):
            notes.append(f"{size} contacts: EWS requests are {setup.fmt_ops(ops)}, not 3 SyncFolderItems only")
    if len({r[2] for r in rows}) > 1:
        notes.append(f"the query count grows with size: {[(r[0], r[2]) for r in rows]}")
    for note in notes:
        print("MISSED: " + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
