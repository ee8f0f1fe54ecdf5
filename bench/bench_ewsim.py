"""Benchmark ewsim through exchangelib: CreateItem/GetItem throughput and a 10,000-item initial sync.

Run from the repository root:  python bench/bench_ewsim.py [--items 2000] [--sync-items 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Configuration,
    Credentials,
    FailFast,
    Message,
    Task,
    Version,  # noqa: E402
)
from exchangelib.protocol import close_connections  # noqa: E402
from exchangelib.version import EXCHANGE_2016  # noqa: E402

from ewsim.testing import running_simulator  # noqa: E402

BATCH = 100


def account_for(url: str, address: str) -> Account:
    config = Configuration(
        service_endpoint=url,
        credentials=Credentials(address, "pw"),
        auth_type=BASIC,
        version=Version(build=EXCHANGE_2016),
        retry_policy=FailFast(),
    )
    return Account(primary_smtp_address=address, config=config, autodiscover=False, access_type=DELEGATE)


def bench_create_get(account: Account, count: int) -> None:
    folder = account.tasks
    started = time.perf_counter()
    ids = []
    for offset in range(0, count, BATCH):
        batch = [Task(subject=f"bench {i}", body="x" * 200) for i in range(offset, min(offset + BATCH, count))]
        ids += [(r.id, r.changekey) for r in account.bulk_create(folder=folder, items=batch, chunk_size=BATCH)]
    created = time.perf_counter() - started
    print(f"CreateItem: {count} items in {created:.2f}s = {count / created:,.0f} items/s (batches of {BATCH})")
    started = time.perf_counter()
    fetched = 0
    for offset in range(0, count, BATCH):
        fetched += sum(1 for _ in account.fetch(ids=ids[offset : offset + BATCH], chunk_size=BATCH))
    got = time.perf_counter() - started
    assert fetched == count
    print(f"GetItem:    {count} items in {got:.2f}s = {count / got:,.0f} items/s (all properties, batches of {BATCH})")


def bench_sync(account: Account, count: int) -> None:
    folder = account.inbox
    # Seed quickly in big batches; this part is not measured.
    for offset in range(0, count, 500):
        batch = [Message(subject=f"s{i}", body="x") for i in range(offset, min(offset + 500, count))]
        account.bulk_create(folder=folder, items=batch, chunk_size=500)
    started = time.perf_counter()
    seen = sum(1 for _ in folder.sync_items(only_fields=["id", "changekey"], max_changes_returned=512))
    took = time.perf_counter() - started
    assert seen == count, seen
    print(
        f"SyncFolderItems: initial sync of {count} items (ids only, 512 per page) in {took:.2f}s "
        f"= {count / took:,.0f} items/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2000, help="items for CreateItem/GetItem (default 2000)")
    parser.add_argument("--sync-items", type=int, default=10000, help="items for the sync (default 10000)")
    args = parser.parse_args()
    with running_simulator() as sim:
        sim.control.create_mailbox("bench@example.com", "pw")
        account = account_for(sim.ews_url, "bench@example.com")
        bench_create_get(account, args.items)
        sim.control.create_mailbox("sync@example.com", "pw")
        bench_sync(account_for(sim.ews_url, "sync@example.com"), args.sync_items)
        close_connections()


if __name__ == "__main__":
    main()
