"""Benchmark of the audit review at 1,000,000 events: filtered pages, deep pages, the CSV export.

Run from the repository root:

    python bench/audit_review.py                 # throwaway SQLite database
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crmsync_bench python bench/audit_review.py
    python bench/audit_review.py --events 100000 # a smaller log

1. The database is a throwaway: SQLite in a temporary VAR_DIR unless DATABASE_URL is given; a
   PostgreSQL database is dropped and recreated first, so its name must contain "bench".
2. Migrate; ten organizations (the first holds 40% of the events); an auditor of the first two.
3. Fill the log with raw inserts (PostgreSQL: COPY; SQLite: executemany), in seq order, a year
   of events, with made-up hashes: the chain is not what is measured (inserts are what the
   append-only triggers allow). Then ANALYZE.
4. For each filter (organization + action, one object, a week, free text): GET the first page
   and a deep one (a cursor among the oldest events that match) as the auditor with Django's
   test Client: one warm-up, then RUNS measured requests; print the median, the events shown
   and the queries per request. Goal: under 200 ms.
5. The CSV export of the auditor's first organization for a quarter, read to the end: rows per
   second.
6. The query plan of each page's query in its first window of seq, per organization
   (PostgreSQL: EXPLAIN ANALYZE; SQLite: EXPLAIN QUERY PLAN).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_mailbox_list import recreate_postgres_database  # noqa: E402

RUNS = 5
BATCH = 50_000
ORGANIZATIONS = 10
MAILBOXES = 20_000
PEOPLE = 2_000
HOT_SHARE = 0.005  # the share of events about one mailbox (a long object history)
SEARCH_WORD = "Countess"  # in the changes of about 2% of the events
OBJECT_TYPES = {
    "organization": "mailboxes.organization",
    "membership": "mailboxes.membership",
    "server_profile": "mailboxes.emailserverprofile",
    "sync_filter": "crm.syncfilter",
    "field_direction": "crm.fielddirection",
    "client_instance": "clients.clientinstance",
    "offline_filter": "clients.offlinefilter",
    "user": "auth.user",
}


def event_rows(
    total: int, after: int, organizations: list[tuple[uuid.UUID, str]], postgres: bool
) -> Iterator[list[tuple]]:
    """Batches of rows in the order of the chain's fields, then the hash: a year of events up to
    now, seq after+1..after+total."""
    from audit.actions import ACTIONS

    rng = random.Random(9)
    actions = list(ACTIONS)
    weights = [30 if a == "mailbox.sync_requested" else 20 if a == "mailbox.tested" else 1 for a in actions]
    types = [OBJECT_TYPES.get(a.split(".")[0], "mailboxes.mailbox") for a in actions]
    # Mailbox i belongs to organization 0 with 40% probability, else to one of the others;
    # mailbox 0, of the first organization, is the hot one.
    owners = [0 if i == 0 or rng.random() < 0.4 else rng.randrange(1, ORGANIZATIONS) for i in range(MAILBOXES)]
    mailboxes = [
        (str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"user{i}@example.com", *organizations[owners[i]])
        for i in range(MAILBOXES)
    ]
    people = [("system" if i % 10 == 0 else f"user{i}", f"192.0.2.{i % 250 + 1}") for i in range(PEOPLE)]
    searched = json.dumps({"job_title": ["Analyst", SEARCH_WORD]})
    syncs = [json.dumps({"channel": ["", channel]}) for channel in ("incoming", "outgoing", "act")]
    others = [json.dumps({"polling_interval_minutes": [5, minutes]}) for minutes in (10, 15, 30)]
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / total

    def text(value: uuid.UUID) -> str:
        return str(value) if postgres else value.hex

    def stamp(moment: datetime) -> str:
        return moment.isoformat() if postgres else moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    organization_ids = {org_id: text(org_id) for org_id, _name in organizations}
    for first in range(1, total + 1, BATCH):
        size = min(BATCH, total + 1 - first)
        picked = rng.choices(range(len(actions)), weights, k=size)
        batch = []
        for n, a in zip(range(first, first + size), picked, strict=True):
            mailbox_id, address, org_id, org_name = mailboxes[
                0 if rng.random() < HOT_SHARE else rng.randrange(MAILBOXES)
            ]
            person, ip = people[rng.randrange(PEOPLE)]
            if rng.random() < 0.02:
                changes = searched
            else:
                changes = rng.choice(syncs if actions[a] == "mailbox.sync_requested" else others)
            seq = after + n
            batch.append(
                (
                    text(uuid.uuid4()),
                    seq,
                    stamp(start + step * n),
                    None,
                    person,
                    ip,
                    actions[a],
                    types[a],
                    mailbox_id,
                    address,
                    organization_ids[org_id],
                    org_name,
                    changes,
                    f"{seq - 1:064x}",
                    f"{seq:064x}",
                )
            )
        yield batch


def secondary_indexes(cursor: Any, postgres: bool) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the audit table's indexes that back no constraint."""
    if postgres:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
    else:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
            " AND tbl_name = 'audit_auditevent' AND sql IS NOT NULL"
        )
    return list(cursor.fetchall())


def fill(total: int, organizations: list[tuple[uuid.UUID, str]]) -> float:
    """Insert ``total`` events after the chain's head; seconds taken.

    The secondary indexes are dropped first and built again after (faster than keeping them up
    to date row by row); the primary key and seq's unique index stay.
    """
    from django.db import connection, transaction

    from audit.chain import FIELDS
    from audit.models import head

    postgres = connection.vendor == "postgresql"
    started = time.perf_counter()
    names = (*FIELDS, "hash")
    columns = ", ".join(names)
    after, _hash = head(connection.alias)
    with transaction.atomic(), connection.cursor() as cursor:
        indexes = secondary_indexes(cursor, postgres)
        for name, _sql in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for n, batch in enumerate(event_rows(total, after, organizations, postgres), start=1):
            if postgres:
                with cursor.cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(names))
                cursor.cursor.executemany(f"INSERT INTO audit_auditevent ({columns}) VALUES ({marks})", batch)
            print(f"\r  {min(n * BATCH, total):,} events", end="", flush=True)
        print(f"; building {len(indexes)} indexes")
        for _name, sql in indexes:
            cursor.execute(sql)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent" if postgres else "ANALYZE")
    return time.perf_counter() - started


def measure(client: Any, url: str) -> tuple[int, int, float]:
    """(events shown, queries per request, median ms) over RUNS requests after one warm-up."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    times, counts = [], set()
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        counts.add(len(captured))
    return response.content.count(b'<td class="action">'), max(counts), statistics.median(times)


def run(total: int) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from audit.filters import AuditFilterForm
    from audit.log import Actor
    from audit.models import AuditEvent
    from audit.views import WINDOW
    from mailboxes.models import Membership, Organization, Role

    call_command("migrate", verbosity=0)
    postgres = connection.vendor == "postgresql"
    system = Actor.system("bench")
    organizations = [Organization.objects.create(name=f"Org {n}") for n in range(ORGANIZATIONS)]
    auditor = get_user_model().objects.create_user("auditor", "auditor@example.com", "!")
    for org in organizations[:2]:
        Membership.add(system, auditor, org, Role.AUDITOR)
    client = Client(HTTP_HOST="localhost")
    client.force_login(auditor)

    print(f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']}), page size {settings.PAGE_SIZE}")
    seconds = fill(total, [(org.pk, org.name) for org in organizations])
    count = AuditEvent.objects.count()
    print(f"filled {count:,} events in {seconds:.0f} s ({count / seconds:,.0f} per second)")

    first = organizations[0]
    hot = AuditEvent.objects.filter(object_repr="user0@example.com").values_list("object_id", flat=True)[0]
    week = timezone.localdate() - timedelta(days=200)
    today = timezone.localdate()
    scenarios = {
        "organization + action": {"organization": str(first.pk), "action": "mailbox.tested"},
        "object": {"object_type": "mailboxes.mailbox", "object_id": hot},
        "person": {"person": "user1234"},
        "date range (a week)": {"date_from": week.isoformat(), "date_to": (week + timedelta(days=6)).isoformat()},
        "date range (6 months)": {"date_from": (today - timedelta(days=182)).isoformat(), "date_to": today.isoformat()},
        "free text": {"q": SEARCH_WORD.lower()},
        "no filter": {},
    }
    choices = [(org.pk, org.name) for org in organizations[:2]]

    def matching(params: dict[str, str]) -> Any:
        form = AuditFilterForm(params, organizations=choices)
        assert form.is_valid(), form.errors
        return form

    results, plans = [], []
    for label, params in scenarios.items():
        form = matching(params)
        # A deep page: the cursor among the oldest matching events, as if one had clicked
        # "Older" to near the end.
        events = form.events()
        deep = list(events.order_by("seq").values_list("seq", flat=True)[: 3 * settings.PAGE_SIZE + 1])[-1]
        for depth, cursor in (("first page", {}), ("deep page", {"before": deep})):
            shown, queries, ms = measure(client, f"/audit/?{form.query(**cursor)}")
            results.append((label, depth, shown, queries, ms))
            # The page's query for each organization, in its first window of seq (the view
            # merges them, and reads further windows while the page is not full).
            top = cursor.get("before") or AuditEvent.objects.order_by("-seq")[0].seq + 1
            for org in form.organizations():
                page = form.events_of(org, after=max(0, top - WINDOW), before=top)
                page = page.order_by("-seq")[: settings.PAGE_SIZE + 1]
                title = f"{label}, {depth}, {dict((str(pk), name) for pk, name in choices)[str(org)]}"
                plans.append((title, page.explain(analyze=True) if postgres else page.explain()))

    # The export: a quarter of the first organization's events, read to the end.
    end = today - timedelta(days=30)
    form = matching({"organization": str(first.pk), "date_from": (end - timedelta(days=90)).isoformat()})
    form = matching({**form.active(), "date_to": end.isoformat()})
    exported = form.events().count()
    started = time.perf_counter()
    response = client.get(f"/audit/export.csv?{form.query()}")
    size = sum(len(chunk) for chunk in response.streaming_content)
    export_seconds = time.perf_counter() - started

    print(f"\n{'filter':<24} {'page':<11} {'shown':>5} {'queries':>7} {'median ms':>10}")
    for label, depth, shown, queries, ms in results:
        flag = "" if ms < 200 else "  (over 200 ms)"
        print(f"{label:<24} {depth:<11} {shown:>5} {queries:>7} {ms:>10.1f}{flag}")
    print(
        f"\nCSV export: {exported:,} rows, {size / 1e6:.1f} MB in {export_seconds:.1f} s:"
        f" {exported / export_seconds:,.0f} rows per second"
    )
    for title, plan in plans:
        print(f"\n-- plan: {title}\n{plan}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="how many audit events (default 1,000,000)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crmsync_portal.settings")
    os.environ.setdefault("DEBUG", "true")  # a development tool: the generated secrets are fine
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        recreate_postgres_database(url)
    elif url:
        sys.exit("DATABASE_URL: only PostgreSQL is supported here; leave it unset for a throwaway SQLite database.")
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as var_dir:
        os.environ["VAR_DIR"] = var_dir
        return run(args.events)


if __name__ == "__main__":
    sys.exit(main())
