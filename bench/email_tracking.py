"""Benchmark of incoming email tracking over EWS: 5,000 messages in one mailbox, through ewsim.

Run from the repository root:

    python bench/email_tracking.py                  # throwaway SQLite database
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crmsync_bench python bench/email_tracking.py

1. A throwaway database and ewsim in a process of its own (bench/_sync_setup.py).
2. Three mailboxes with the rule "from CRM leads, contacts and accounts", each with N messages
   (default 5,000) in its Inbox: all from strangers (none tracked), all from CRM contacts (all
   tracked), and half and half.
3. One incoming run per mailbox, in this process: messages per second, SQL queries per message
   (an execute wrapper on this connection; the heartbeat's own connection is not counted) and EWS requests.
Goals (issue 10): a constant number of queries per tracked message, none per untracked one
(only a fixed few per page of 512 messages).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sync_setup as setup  # noqa: E402

CONTACTS = 1000


def fill(ewsim: setup.Ewsim, address: str, n: int, tracked_share: float) -> None:
    tracked = int(n * tracked_share)
    for i in range(n):
        sender = f"c{i % CONTACTS}@customer.example" if i < tracked else f"stranger{i}@elsewhere.example"
        raw = (
            f"From: Sender {i} <{sender}>\r\nTo: {address}\r\nCc: c{(i + 1) % CONTACTS}@customer.example\r\n"
            f"Subject: Message {i}\r\nMessage-ID: <bench-{address}-{i}@customer.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Some text of a business email.\r\n" * 20
        ).encode()
        ewsim.control.add_mime(address, "inbox", raw)


def measure(ewsim: setup.Ewsim, mailbox: object) -> tuple[object, int, float, Counter]:
    from django.db import connection

    from mailboxes.models import Channel
    from syncjobs.engine import run_sync
    from syncjobs.models import SyncRun, Trigger

    queued = SyncRun.objects.create(mailbox=mailbox, channel=Channel.INCOMING, trigger=Trigger.MANUAL)
    ewsim.control.clear_requests()
    count = [0]

    def counted(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counted):
        started = time.perf_counter()
        run = run_sync(queued.pk)
        seconds = time.perf_counter() - started
    return run, count[0], seconds, ewsim.operations()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages per mailbox (default 5000)")
    args = parser.parse_args()
    with setup.temp_dir() as var_dir:
        vendor = setup.prepare(var_dir)
        from crm.models import Contact
        from mailboxes.models import TestStatus, TrackingRule

        with setup.Ewsim() as ewsim:
            org, profile, system = setup.make_org(ewsim.ews_url)
            cases = (("untracked", 0.0), ("tracked", 1.0), ("half", 0.5))
            mailboxes = setup.ready_mailboxes(org, profile, system, [name for name, _ in cases], ewsim)
            owner = mailboxes[0].user
            Contact.objects.bulk_create(
                [
                    Contact(organization=org, owner=owner, last_name=f"Contact {i}", email=f"c{i}@customer.example")
                    for i in range(CONTACTS)
                ]
            )
            print(f"Incoming tracking over EWS ({vendor}), {args.messages:,} messages per mailbox")
            print(f"{'mailbox':<10} {'tracked':>8} {'msgs/s':>8} {'queries':>8} {'q/msg':>7} {'q/tracked':>9}  EWS")
            for mailbox, (name, share) in zip(mailboxes, cases, strict=True):
                mailbox.tracking_rule = TrackingRule.FROM_CRM_RECORDS
                mailbox.test_incoming, mailbox.enabled_incoming = TestStatus.SUCCESS, True
                mailbox.save()
                setup.log(f"filling {mailbox.address}")
                fill(ewsim, mailbox.address, args.messages, share)
                setup.log(f"tracking {mailbox.address}")
                run, queries, seconds, ops = measure(ewsim, mailbox)
                if run.status != "succeeded":
                    sys.exit(f"run failed: {run.error}")
                tracked = run.counts.get("tracked", 0)
                per_tracked = f"{queries / tracked:9.2f}" if tracked else f"{'-':>9}"
                print(
                    f"{name:<10} {tracked:>8} {args.messages / seconds:>8.0f} {queries:>8} "
                    f"{queries / args.messages:>7.2f} {per_tracked}  {dict(ops)}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
