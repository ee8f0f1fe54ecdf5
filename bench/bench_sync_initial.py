"""Benchmark of an initial sync of 10,000 contacts: the engine against a bare exchangelib loop.

Run from the repository root:

    python bench/bench_sync_initial.py [--contacts 10000] [--profile] [--tracemalloc]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crmsync_bench python bench/bench_sync_initial.py

1. A throwaway database (see bench/_sync_setup.py) and ewsim in a process of its own.
2. Two ready mailboxes whose users own N CRM contacts each (a third with --profile).
3. Each workload runs in a child process of its own (this script with --child), so its
   peak RSS (ru_maxrss) is its own; the child reports its RSS after the imports, the peak,
   and the wall time of the workload:
   - engine: one ``run_sync`` of a queued run (the initial sync creates N contacts);
   - bare: exchangelib alone creates the same N contacts (given name, surname, email, job
     title, two phones, body, display name and the CRM-id extended property) in another
     mailbox, ``account.bulk_create`` in batches of 100, impersonating as the engine does.
   Timed runs go without tracemalloc; with --tracemalloc a second pair of runs (into fresh
   mailboxes, about 3x slower) measures the tracemalloc peak. EWS requests per workload come
   from ewsim's request log.
4. Prints the figures side by side and the engine/bare time ratio (goal: at most 1.25).
   With --profile, one more engine run under cProfile: the top 15 by cumulative time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sync_setup as setup  # noqa: E402

CONTACTS = 10_000
BATCH = 100
GOAL = 1.25


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bare_contacts(ews_url: str, address: str, count: int, trace: bool) -> dict[str, Any]:
    """exchangelib only: create count contacts, batches of BATCH; no Django in this process."""
    import tracemalloc
    import uuid

    from exchangelib import (
        BASIC,
        IMPERSONATION,
        Account,
        Body,
        Configuration,
        Contact,
        Credentials,
        EWSTimeZone,
        ExtendedProperty,
        FailFast,
        Version,
    )
    from exchangelib.indexed_properties import EmailAddress, PhoneNumber
    from exchangelib.version import EXCHANGE_2016

    class CrmId(ExtendedProperty):  # the same property as syncjobs.backends.ews.CrmId
        property_set_id = "a3f1c2d4-6b7e-4f80-9a1b-2c3d4e5f6071"
        property_name = "CrmSyncPortalRecordId"
        property_type = "String"

    Contact.register("crm_id", CrmId)
    base = rss_mb()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    config = Configuration(
        service_endpoint=ews_url,
        credentials=Credentials(setup.SERVICE, setup.SERVICE_PW),
        auth_type=BASIC,
        version=Version(build=EXCHANGE_2016),
        retry_policy=FailFast(),
    )
    account = Account(
        address, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=EWSTimeZone("UTC")
    )
    folder = account.contacts
    tag = address.split("@")[0]
    created = 0
    for offset in range(0, count, BATCH):
        batch = []
        for i in range(offset, min(offset + BATCH, count)):
            first, last = f"First{i}", f"Last{i} {tag}"
            batch.append(
                Contact(
                    account=account,
                    folder=folder,
                    given_name=first,
                    surname=last,
                    display_name=f"{first} {last}",
                    email_addresses=[EmailAddress(label="EmailAddress1", email=f"c{i}.{tag}@example.org")],
                    job_title="Buyer",
                    phone_numbers=[
                        PhoneNumber(label="BusinessPhone", phone_number=f"+45 3000 {i:05d}"),
                        PhoneNumber(label="MobilePhone", phone_number=f"+45 4000 {i:05d}"),
                    ],
                    body=Body(f"Contact {i} of {tag}: met at the trade fair, prefers email."),
                    crm_id=str(uuid.uuid4()),
                )
            )
        answers = account.bulk_create(folder=folder, items=batch, chunk_size=BATCH)
        created += sum(1 for a in answers if not isinstance(a, Exception))
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    assert created == count, created
    return {"seconds": seconds, "created": created, "rss_base_mb": base, "tracemalloc_mb": peak}


def engine_run(mailbox_id: str, trace: bool, profile: bool) -> dict[str, Any]:
    """One run_sync of the mailbox (its initial sync), in this process."""
    import cProfile
    import io
    import pstats
    import tracemalloc

    setup.prepare(os.environ["VAR_DIR"], fresh=False)
    from mailboxes.models import Mailbox
    from syncjobs.engine import run_sync

    mailbox = Mailbox.objects.get(pk=mailbox_id)
    queued = setup.new_run(mailbox)
    base = rss_mb()
    profiler = cProfile.Profile() if profile else None
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    run = run_sync(queued.pk)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if run is None or run.status != "succeeded":
        sys.exit(f"engine run failed: {run and (run.status, run.error)}")
    report = {"seconds": seconds, "created": run.counts["to_exchange"].get("created", 0), "rss_base_mb": base}
    report["tracemalloc_mb"] = peak
    if profiler:
        out = io.StringIO()
        # Python 3.12's cProfile sees every thread: leave out the heartbeat thread's waiting.
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(r"^(?!.*(threading|_thread|engine.py:\d+\(__exit__\)))", 15)
        out.write("\nThe same run, syncjobs' own functions only:\n")
        stats.print_stats(r"syncjobs/(?!.*\(__exit__\))", 15)
        report["profile"] = out.getvalue()
    return report


def child(args: argparse.Namespace) -> int:
    if args.child == "bare":
        report = bare_contacts(args.ews_url, args.address, args.contacts, args.tracemalloc)
    else:
        report = engine_run(args.mailbox, args.tracemalloc, args.profile)
    report["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report))
    return 0


def spawn(ewsim: setup.Ewsim, *argv: str) -> tuple[dict[str, Any], Any]:
    """Run this script as a child; returns its report and the EWS operations it caused."""
    ewsim.control.clear_requests()
    out = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, env=os.environ, cwd=setup.ROOT
    )
    if out.returncode:
        sys.exit(f"child {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), ewsim.operations()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=CONTACTS, help="contacts to create (default %(default)s)")
    parser.add_argument("--profile", action="store_true", help="also profile one engine run (cProfile, top 15)")
    parser.add_argument("--child", choices=["engine", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--mailbox", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--ews-url", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the tracemalloc peaks")
    args = parser.parse_args()
    if args.child:
        return child(args)

    n = args.contacts
    with setup.temp_dir() as var_dir:
        vendor = setup.prepare(var_dir)
        with setup.Ewsim() as ewsim:
            org, profile, system = setup.make_org(ewsim.ews_url)
            names = ["engine1"] + (["engine2"] if args.tracemalloc else []) + (["engine3"] if args.profile else [])
            engines = setup.ready_mailboxes(org, profile, system, names, ewsim)
            for mailbox in engines:
                setup.add_contacts(mailbox, n)
            for address in ("bare1@example.com", "bare2@example.com"):
                ewsim.control.create_mailbox(address, "pw")
            from django.db import connection

            connection.close()  # the children use the database now
            common = ["--contacts", str(n)]
            bare = ["--child", "bare", "--ews-url", ewsim.ews_url, *common]
            results = {}
            setup.log(f"bare exchangelib: {n} contacts (timed)")
            results["bare"] = spawn(ewsim, *bare, "--address", "bare1@example.com")
            setup.log(f"engine: initial sync of {n} contacts (timed)")
            results["engine"] = spawn(ewsim, "--child", "engine", "--mailbox", str(engines[0].pk), *common)
            if args.tracemalloc:
                setup.log("bare exchangelib again, with tracemalloc")
                results["bare_mem"] = spawn(ewsim, *bare, "--address", "bare2@example.com", "--tracemalloc")
                setup.log("engine again, with tracemalloc")
                results["engine_mem"] = spawn(
                    ewsim, "--child", "engine", "--mailbox", str(engines[1].pk), "--tracemalloc", *common
                )
            if args.profile:
                setup.log("engine again, under cProfile")
                results["engine_prof"] = spawn(
                    ewsim, "--child", "engine", "--mailbox", str(engines[-1].pk), "--profile", *common
                )

    print(f"database: {vendor}; {n:,} contacts created in an empty mailbox; each workload in a child process")
    print(
        f"{'workload':<22} {'seconds':>8} {'items/s':>8} {'RSS after imports':>18} {'peak RSS':>9} "
        f"{'tracemalloc peak':>17}  EWS requests"
    )
    for key, label in (("bare", "bare exchangelib loop"), ("engine", "engine run_sync")):
        report, ops = results[key]
        mem = results.get(key + "_mem", ({"tracemalloc_mb": float("nan")},))[0]
        print(
            f"{label:<22} {report['seconds']:>8.2f} {n / report['seconds']:>8,.0f} "
            f"{report['rss_base_mb']:>15.0f} MB {report['maxrss_mb']:>6.0f} MB {mem['tracemalloc_mb']:>14.1f} MB  "
            f"{setup.fmt_ops(ops)}"
        )
    ratio = results["engine"][0]["seconds"] / results["bare"][0]["seconds"]
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"engine / bare time: {ratio:.2f}x (goal at most {GOAL}x: {verdict})")
    if args.profile:
        report, _ = results["engine_prof"]
        print(f"\ncProfile of one engine run ({report['seconds']:.2f}s under the profiler), top 15 cumulative:")
        print(report["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
