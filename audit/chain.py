"""The audit log's hash chain: what an event's hash covers, and how the chain is checked.

Each event stores ``prev_hash`` (its predecessor's hash; the genesis for the first) and
``hash`` = SHA-256 of the canonical JSON of its content and ``prev_hash``. Changing,
removing or slipping in an event breaks the chain at that point; ``check`` walks events
(from the database or a prune archive) and says where and how.

Writers take the chain lock (``lock``) before reading the head, so two writers never
link to the same predecessor; ``seq`` is unique, so a fork could not be stored anyway.
Deleting events (``audit_prune``; Django's flush in tests) happens only inside
``maintenance``: the database triggers (audit/triggers.py) refuse DELETE otherwise, and
UPDATE always.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.db.transaction import TransactionManagementError

GENESIS = "0" * 64
# pg_advisory_xact_lock key: b"auditlog" as a big-endian integer.
LOCK_KEY = int.from_bytes(b"auditlog", "big")
MAINTENANCE_TABLE = "audit_maintenance"

# The fields in the hash, in the order an archive line lists them.
FIELDS = (
    "id",
    "seq",
    "time",
    "actor_id",
    "actor_name",
    "ip",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "organization_id",
    "organization_name",
    "changes",
    "prev_hash",
)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _uuid_text(value: Any) -> str | None:
    if not value:
        return None
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def canonical_fields(**values: Any) -> dict[str, Any]:
    """The values as the hash sees them: JSON types, one spelling for each value.

    Times in UTC with microseconds, UUIDs in their hyphenated form, addresses as
    ``ipaddress`` writes them: whatever the database driver hands back, the same text.
    """
    time = values["time"]
    if isinstance(time, datetime.datetime):
        time = time.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ip = values["ip"]
    return {
        "id": _uuid_text(values["id"]),
        "seq": int(values["seq"]),
        "time": time,
        "actor_id": _text_or_none(values["actor_id"]),
        "actor_name": values["actor_name"],
        "ip": str(ipaddress.ip_address(str(ip).split("/")[0])) if ip else None,
        "action": values["action"],
        "object_type": values["object_type"],
        "object_id": values["object_id"],
        "object_repr": values["object_repr"],
        "organization_id": _uuid_text(values["organization_id"]),
        "organization_name": values["organization_name"],
        "changes": values["changes"],
        "prev_hash": values["prev_hash"],
    }


def digest(fields: dict[str, Any]) -> str:
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def lock(using: str) -> None:
    """Hold the chain until this transaction ends (call inside one).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, every
    transaction of the portal begins IMMEDIATE (settings.py), holding the database's
    write lock, so writers are one at a time already.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


@contextmanager
def maintenance(using: str, reason: str) -> Iterator[None]:
    """Let this transaction delete audit rows; inside ``transaction.atomic()`` only.

    The triggers allow DELETE (and TRUNCATE on PostgreSQL) while a row exists in
    audit_maintenance; this transaction alone sees the row it inserts, and removes it:
    1. Outside a transaction the row would be committed at once, for every connection:
       refused.
    2. The block ends normally: the row is deleted before the transaction commits.
    3. The block raises: the transaction is marked for rollback, which takes the row with
       it (a DELETE could not run in a transaction that PostgreSQL has aborted). A caller
       that catches the exception still cannot commit the row.
    A row left over all the same (plain SQL, say) is reported by ``audit_verify``
    (triggers.maintenance_rows).
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise TransactionManagementError(
            "chain.maintenance needs a transaction: call it inside transaction.atomic(), "
            "or its flag would be committed at once."
        )
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {MAINTENANCE_TABLE} (reason) VALUES (%s)", [reason[:200]])
    try:
        yield
    except BaseException:
        transaction.set_rollback(True, using=using)
        raise
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {MAINTENANCE_TABLE}")


@dataclass(frozen=True)
class Break:
    """The first place where the chain does not hold."""

    kind: str  # "changed", "missing", "inserted", "prev_hash"
    seq: int
    event_id: str
    message: str


@dataclass
class Walk:
    """Where a walk is: the next seq and the hash it must link to."""

    seq: int
    prev_hash: str
    count: int = 0
    first_seq: int | None = None

    @property
    def last_seq(self) -> int:
        return self.seq - 1


def check(events: Iterable[dict[str, Any]], walk: Walk, known: Any = None) -> Break | None:
    """Walk ``events`` (dicts with FIELDS and ``hash``, in seq order) on from ``walk``.

    Returns the first break, or None with ``walk`` at the end. For each event, in order:
    1. a seq before the expected one: an event inserted (before the chain's start);
    2. a seq after it: the events in between are missing (deleted);
    3. the hash does not match the content: the event was changed;
    4. it does not link to its predecessor: an event inserted (``known(hash)`` finds
       an earlier event it links to instead) or a predecessor replaced (prev_hash).
    """
    for event in events:
        fields = canonical_fields(**event)
        seq, event_id = fields["seq"], fields["id"]
        if seq < walk.seq:
            message = f"inserted event: seq {seq} is before the chain's next ({walk.seq})"
            return Break("inserted", seq, event_id, message)
        if seq > walk.seq:
            span = str(walk.seq) if seq == walk.seq + 1 else f"{walk.seq}-{seq - 1}"
            return Break("missing", seq, event_id, f"missing event: seq {span} (deleted) before this event")
        if digest(fields) != event["hash"]:
            return Break("changed", seq, event_id, "content changed: the event's hash does not match its content")
        if fields["prev_hash"] != walk.prev_hash:
            linked = known(fields["prev_hash"]) if known else None
            if linked is not None:
                message = f"inserted event: it links to seq {linked}, not to its predecessor (seq {seq - 1})"
                return Break("inserted", seq, event_id, message)
            message = f"prev_hash mismatch: the event does not link to its predecessor (seq {seq - 1}): replaced"
            return Break("prev_hash", seq, event_id, message)
        walk.first_seq = seq if walk.first_seq is None else walk.first_seq
        walk.seq, walk.prev_hash, walk.count = seq + 1, event["hash"], walk.count + 1
    return None
