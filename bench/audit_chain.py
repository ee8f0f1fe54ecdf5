"""Benchmark of the audit hash chain: writes per second, audit_verify and audit_prune rates.

Run from the repository root:

    python bench/audit_chain.py                  # throwaway SQLite database
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crmsync_bench python bench/audit_chain.py
    python bench/audit_chain.py --events 20000   # a smaller log

1. The database is a throwaway: SQLite in a temporary VAR_DIR unless DATABASE_URL is given; a
   PostgreSQL database is dropped and recreated first, so its name must contain "bench".
2. Fill the log with --events events of the past year (chained bulk_create).
3. Writes, single-threaded, each in its own transaction as a view's record() is:
   - "unchained": a plain INSERT of the row (Model.save past the chain), as before the chain;
   - "chained": record() (lock, read the head, hash, INSERT).
4. Time audit_verify's walk (verify_database) and an audit_prune of the older half (archive
   written and read back, rows deleted, in one transaction), then audit_verify again.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_mailbox_list import recreate_postgres_database  # noqa: E402

WRITES = 2000
BATCH = 5000


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f}/s  ({count:,} in {seconds:.2f} s)"


def run(total: int, archive_dir: Path) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, models, transaction
    from django.utils import timezone

    from audit import chain
    from audit.archive import prune, verify_database
    from audit.log import Actor, record
    from audit.models import AuditEvent
    from mailboxes.models import Organization

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']})")
    org = Organization.objects.create(name="Acme")
    actor = Actor(name="bench", ip="192.0.2.1")
    changes = {"name": ["Acme", "Acme Corporation"], "ignore_logical_deletes": [False, True]}

    # A year of events, oldest first, chained in batches.
    start = timezone.now() - timedelta(days=365)
    step = timedelta(days=365) / total
    written = AuditEvent.objects.count()
    while written < total:
        batch = [
            AuditEvent(
                time=start + step * n,
                actor_name=f"user{n % 500}",
                ip="192.0.2.7",
                action="organization.updated",
                object_type="mailboxes.organization",
                object_id=str(org.pk),
                object_repr=str(org),
                organization_id=org.pk,
                organization_name=str(org),
                changes={"name": [f"Acme {n}", f"Acme {n + 1}"]},
            )
            for n in range(written, min(total, written + BATCH))
        ]
        AuditEvent.objects.bulk_create(batch)
        written += len(batch)

    def unchained(n: int) -> None:
        event = AuditEvent(
            seq=-1 - n,  # apart from the chain's seqs; the hashes are not computed
            actor_name=actor.name,
            ip=actor.ip,
            action="organization.updated",
            object_type="mailboxes.organization",
            object_id=str(org.pk),
            object_repr=str(org),
            organization_id=org.pk,
            organization_name=str(org),
            changes=changes,
            prev_hash="0" * 64,
            hash="0" * 64,
        )
        with transaction.atomic():
            models.Model.save(event, force_insert=True)

    started = time.perf_counter()
    for n in range(WRITES):
        unchained(n)
    print(f"writes, unchained (as before):  {rate(WRITES, time.perf_counter() - started)}")
    # The unchained rows are not part of the chain: gone before the chained writes.
    with transaction.atomic(), chain.maintenance(connection.alias, "bench"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq < 0")

    started = time.perf_counter()
    for _ in range(WRITES):
        record(actor, "organization.updated", org, changes=changes, organization=org)
    print(f"writes, chained (record()):     {rate(WRITES, time.perf_counter() - started)}")

    started = time.perf_counter()
    result = verify_database()
    seconds = time.perf_counter() - started
    assert result.ok, result.failure
    print(f"audit_verify, {result.walk.count:,} events: {rate(result.walk.count, seconds)}")

    before = start + step * (total // 2)
    started = time.perf_counter()
    anchor = prune(before, archive_dir, "bench")
    seconds = time.perf_counter() - started
    size = (archive_dir / anchor.archive_name).stat().st_size
    print(f"audit_prune, {anchor.count:,} events:  {rate(anchor.count, seconds)}; archive {size / 1e6:.1f} MB")
    started = time.perf_counter()
    result = verify_database()
    assert result.ok, result.failure
    print(f"audit_verify after the prune:   {rate(result.walk.count, time.perf_counter() - started)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
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
        run(args.events, Path(var_dir) / "audit-archive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
