"""Benchmark of the mailbox list: SQL queries and render time at 10 and 10,000 mailboxes.

Run from the repository root:

    python bench/bench_mailbox_list.py              # throwaway SQLite database
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crmsync_bench python bench/bench_mailbox_list.py

1. The database is a throwaway: SQLite in a temporary VAR_DIR unless DATABASE_URL is
   given; a PostgreSQL database is dropped and recreated first, so its name must
   contain "bench" (the script refuses any other, to never clobber real data).
2. Migrate, create an organization, its administrator and a few server profiles.
3. For each size (10, then 10,000): add mailboxes with bulk_create (users, memberships,
   mailboxes; approval and test states varied), then GET each URL as the administrator
   with Django's test Client: one warm-up request, then 5 measured ones; report the
   number of SQL queries and the median time.
4. Exit 1 if a URL's query count differs between sizes: the list must not run a query
   per row (the issue's requirement).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10, 10_000)
RUNS = 5
URLS = ("/mailboxes/", "/mailboxes/?q=user1&approval=pending&sort=-owner")
# user1 (and user1x, user1xx, ...) are pending when x ≡ 1 mod 4, so the filtered URL lists rows at every size.
APPROVALS = ("approved", "pending", "rejected", "empty")
TESTS = ("not_run", "success", "failure")


def recreate_postgres_database(url: str) -> None:
    """Drop and recreate the benchmark database, so the schema starts clean."""
    import dj_database_url
    import psycopg

    conf = dj_database_url.parse(url)
    name = conf["NAME"]
    if "bench" not in name:
        sys.exit(f"Refusing to drop database {name!r}: use one whose name contains 'bench'.")
    params = {"host": conf["HOST"] or None, "port": conf["PORT"] or None, "user": conf["USER"] or None}
    if conf["PASSWORD"]:
        params["password"] = conf["PASSWORD"]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def add_mailboxes(org: Any, profiles: list[Any], start: int, stop: int) -> None:
    """Users user<start>..user<stop-1>, each a member of org with one mailbox."""
    from django.contrib.auth import get_user_model

    from mailboxes.models import Mailbox, Membership

    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [
            user_model(
                username=f"user{i}",
                first_name="User",
                last_name=str(i),
                email=f"user{i}@example.com",
                password="!",  # unusable: the benchmark signs in with force_login
            )
            for i in range(start, stop)
        ],
        batch_size=1000,
    )
    if not all(user.pk for user in users):  # backends that don't return ids from bulk inserts
        users = list(user_model.objects.filter(username__in=[u.username for u in users]).order_by("id"))
    Membership.objects.bulk_create(
        [Membership(user=user, organization=org, role="user", is_sync_organization=True) for user in users],
        batch_size=1000,
    )
    mailboxes = []
    for i, user in zip(range(start, stop), users, strict=True):
        approval = APPROVALS[i % len(APPROVALS)]
        test = TESTS[i % len(TESTS)]
        mailboxes.append(
            Mailbox(
                organization=org,
                user=user,
                address="" if approval == "empty" else f"user{i}@example.com",
                profile=profiles[i % len(profiles)] if i % 5 else None,
                approval_status=approval,
                test_incoming=test,
                test_outgoing=TESTS[(i + 1) % len(TESTS)],
                test_act=test,
                test_overall=test,
                is_active=i % 7 != 0,
            )
        )
    Mailbox.objects.bulk_create(mailboxes, batch_size=1000)


def measure(client: Any, url: str) -> tuple[int, int, float]:
    """(rows shown, queries per request, median milliseconds) over RUNS requests after one warm-up.

    A page with no rows skips the page query, so an empty page is refused: it would
    make the query counts incomparable.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    rows = response.content.count(b"<tr>") - 1  # minus the header row
    if rows < 1:
        sys.exit(f"{url}: no mailbox rows; the benchmark data must match every URL.")
    counts, times = set(), []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        counts.add(len(captured))
    if len(counts) != 1:
        sys.exit(f"{url}: the query count varies between identical requests: {sorted(counts)}")
    return rows, counts.pop(), statistics.median(times)


def run() -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from audit.log import Actor
    from mailboxes.models import EmailServerProfile, Membership, Organization, ProfileKind, Role

    call_command("migrate", verbosity=0)
    system = Actor.system("bench")
    org = Organization.objects.create(name="Acme")
    admin = get_user_model().objects.create_user("admin", "admin@example.com", "!")
    Membership.add(system, admin, org, Role.ADMINISTRATOR)
    profiles = [
        EmailServerProfile.objects.create(
            organization=org,
            name=f"Exchange {n}",
            kind=ProfileKind.EXCHANGE_ONPREM,
            ews_url=f"https://mail{n}.example.com/EWS/Exchange.asmx",
            username="svc@example.com",
            password="bench-secret",
        )
        for n in range(3)
    ]
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)

    print(f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']}), page size {settings.PAGE_SIZE}")
    results: dict[str, dict[int, int]] = {url: {} for url in URLS}
    rows = []
    created = 0
    for size in SIZES:
        add_mailboxes(org, profiles, created, size)
        created = size
        for url in URLS:
            shown, queries, ms = measure(client, url)
            results[url][size] = queries
            rows.append((size, url, shown, queries, ms))

    print(f"{'N':>7}  {'URL':<52} {'rows':>4} {'queries':>7} {'median ms':>10}")
    for size, url, shown, queries, ms in rows:
        print(f"{size:>7,}  {url:<52} {shown:>4} {queries:>7} {ms:>10.1f}")

    failed = {url: counts for url, counts in results.items() if len(set(counts.values())) != 1}
    for url, counts in failed.items():
        print(f"FAIL {url}: the query count grows with the number of mailboxes: {counts}")
    return 1 if failed else 0


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crmsync_portal.settings")
    os.environ.setdefault("DEBUG", "true")  # a development tool: the generated secrets are fine
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        recreate_postgres_database(url)
    elif url:
        sys.exit("DATABASE_URL: only PostgreSQL is supported here; leave it unset for a throwaway SQLite database.")
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as var_dir:
        # Before Django reads its settings: the SQLite file and local secrets go here.
        os.environ["VAR_DIR"] = var_dir
        return run()


if __name__ == "__main__":
    sys.exit(main())
