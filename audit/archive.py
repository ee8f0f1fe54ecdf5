"""Checking the audit chain and pruning it into archives (manage.py audit_verify, audit_prune).

An archive is a gzip file of JSON lines, one event per line with every hashed field and
its hash (chain.FIELDS + "hash"), in seq order. Pruning removes a prefix of the chain (the
events up to a seq) and leaves an AuditAnchor with the last pruned seq and hash: the
remaining events go on from there, and the archive's own chain must end at the anchor.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from audit import chain
from audit.log import Actor, record
from audit.models import AuditAnchor, AuditEvent

CHUNK = 5000
ROW_FIELDS = (*chain.FIELDS, "hash")


class PruneError(Exception):
    """A prune that is refused; nothing was removed."""


@dataclass
class Result:
    """What a check found: where the chain starts and ends, or its first break."""

    walk: chain.Walk
    broken: chain.Break | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.problems

    @property
    def failure(self) -> str:
        if self.broken is not None:
            return f"seq {self.broken.seq} (event id {self.broken.event_id}): {self.broken.message}"
        return "; ".join(self.problems)


def events(count: int) -> str:
    """ "1 event", "5 events": for the commands' output."""
    return f"{count} event" if count == 1 else f"{count} events"


def event_rows(using: str = "default", upto: int | None = None) -> Iterator[dict[str, Any]]:
    """Every event (up to seq ``upto``) in seq order, in chunks: constant memory at any size."""
    events = AuditEvent.objects.using(using).order_by("seq")
    if upto is not None:
        events = events.filter(seq__lte=upto)
    after: int | None = None
    while True:
        chunk = events.filter(seq__gt=after) if after is not None else events
        rows = list(chunk.values(*ROW_FIELDS)[:CHUNK])
        yield from rows
        if len(rows) < CHUNK:
            return
        after = rows[-1]["seq"]


def _start(anchor: AuditAnchor | None) -> chain.Walk:
    return chain.Walk(anchor.seq + 1, anchor.hash) if anchor else chain.Walk(1, chain.GENESIS)


def _known(using: str) -> Callable[[str], int | None]:
    """Finds the seq of the event (or anchor, or the genesis: 0) with a given hash."""

    def find(value: str) -> int | None:
        if value == chain.GENESIS:
            return 0
        for model in (AuditEvent, AuditAnchor):
            seq = model.objects.using(using).filter(hash=value).values_list("seq", flat=True).first()
            if seq is not None:
                return seq
        return None

    return find


def anchor_problems(anchors: list[AuditAnchor]) -> list[str]:
    """Each prune must go on where the one before it ended (they are in seq order)."""
    problems, previous = [], _start(None)
    for anchor in anchors:
        if (anchor.first_seq, anchor.prev_hash) != (previous.seq, previous.prev_hash):
            problems.append(f"the prune of seq {anchor.first_seq}-{anchor.seq} does not follow the one before it")
        if anchor.count != anchor.seq - anchor.first_seq + 1:
            problems.append(f"the prune of seq {anchor.first_seq}-{anchor.seq} counts {anchor.count} events")
        previous = _start(anchor)
    return problems


def verify_database(using: str = "default") -> Result:
    """Walk the chain from the last prune's anchor (or the genesis) through every event."""
    anchors = list(AuditAnchor.objects.using(using).order_by("seq"))
    result = Result(_start(anchors[-1] if anchors else None), problems=anchor_problems(anchors))
    result.broken = chain.check(event_rows(using), result.walk, _known(using))
    return result


def check_head(seq: int, head_hash: str, walk: chain.Walk, using: str = "default") -> tuple[bool, str]:
    """Whether the head an earlier ``audit_verify`` printed (``seq``:``head_hash``) is still in the
    chain that ``verify_database`` walked up to ``walk``; (ok, what was found).

    The chain shows that nothing before its last event was changed, but not that events after
    it were removed, nor that the whole log was rewritten: a head kept outside the database does.
    1. The chain ends before ``seq``: the newest events were removed.
    2. The event at ``seq`` has another hash: the log was rewritten from there on (or before).
    3. ``seq`` was pruned since: the prune's anchor holds the hash of its last event; an event
       in the middle of an archive is checked by verifying that archive (``--archive``).
    """
    if seq > walk.last_seq:
        return False, (
            f"the chain ends at seq {walk.last_seq}, before the expected head (seq {seq}): "
            f"events {walk.seq}-{seq} or more were removed"
        )
    found = AuditEvent.objects.using(using).filter(seq=seq).values_list("hash", flat=True).first()
    what = f"seq {seq}"
    if found is None:
        anchor = AuditAnchor.objects.using(using).filter(first_seq__lte=seq, seq__gte=seq).first()
        if anchor is None:
            found, what = (chain.GENESIS, "the genesis") if seq == 0 else (None, what)
        elif anchor.seq == seq:
            found, what = anchor.hash, f"seq {seq} (pruned into {anchor.archive_name})"
        else:
            return True, f"seq {seq} was pruned into {anchor.archive_name}: check it with --archive"
    if found is None:
        return False, f"seq {seq} (the expected head) is missing"
    if found != head_hash:
        return False, f"{what} has hash {found}, not the expected head's {head_hash}: the log was rewritten"
    return True, f"{what} has the expected hash"


def read_archive(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except ValueError:
                raise ValueError(f"line {number} is not JSON") from None
            if not isinstance(row, dict) or set(row) != set(ROW_FIELDS):
                raise ValueError(f"line {number} is not an archived event")
            yield row


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_archive(path: Path, using: str = "default") -> Result:
    """Check an archive's own chain, and that it is what a prune removed: it starts where
    that prune's anchor says, ends at its seq and hash, and has the SHA-256 it recorded."""
    result = Result(chain.Walk(1, chain.GENESIS))
    try:
        first = next(read_archive(path), None)
        if first is None:
            result.problems.append(f"{path} holds no events")
            return result
        anchor = AuditAnchor.objects.using(using).filter(first_seq=first["seq"]).first()
        if anchor is None:
            result.problems.append(f"no prune in this database starts at seq {first['seq']} (the archive's first)")
            return result
        result.walk = chain.Walk(anchor.first_seq, anchor.prev_hash)
        result.broken = chain.check(read_archive(path), result.walk)
    except (OSError, EOFError, ValueError) as error:
        result.problems.append(f"{path} cannot be read: {error}")
        return result
    if result.broken is None:
        if (result.walk.last_seq, result.walk.prev_hash) != (anchor.seq, anchor.hash):
            result.problems.append(
                f"the archive ends at seq {result.walk.last_seq}, not at the prune's last event (seq {anchor.seq})"
            )
        if file_sha256(path) != anchor.archive_sha256:
            result.problems.append(f"its SHA-256 is not the one recorded at the prune ({anchor.archive_name})")
    return result


def cutoff(before: datetime.datetime, using: str = "default") -> int | None:
    """The last seq to prune: every event up to it is older than ``before`` (the first event
    at or after ``before`` stays, and so does everything after it: a prefix of the chain)."""
    events = AuditEvent.objects.using(using).order_by("seq").values_list("seq", flat=True)
    first_kept = events.filter(time__gte=before).first()
    if first_kept is not None:
        return first_kept - 1
    return events.order_by("-seq").first()


@dataclass(frozen=True)
class Recorded:
    """An organization as the events recorded it (id and name): audit imports no other app."""

    pk: Any
    name: str

    def __str__(self) -> str:
        return self.name


def _write_archive(
    path: Path, using: str, walk: chain.Walk, upto: int, organizations: dict[Any, str]
) -> chain.Break | None:
    """Write events up to ``upto`` to ``path`` (via a .partial file, fsynced, renamed),
    checking their chain on the way: nothing is written if it is broken. ``organizations``
    gets the organizations of the events written ({id: newest name}; None: no organization)."""
    partial = path.with_name(path.name + ".partial")

    def written(rows: Iterator[dict[str, Any]], out: Any) -> Iterator[dict[str, Any]]:
        for row in rows:
            organizations[row["organization_id"]] = row["organization_name"]
            line = {**chain.canonical_fields(**row), "hash": row["hash"]}
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
            yield row

    with partial.open("xb") as raw:
        with gzip.GzipFile(filename=path.name, fileobj=raw, mode="wb", mtime=0) as out:
            broken = chain.check(written(event_rows(using, upto), out), walk, _known(using))
        raw.flush()
        os.fsync(raw.fileno())
    if broken is not None:
        partial.unlink()
        return broken
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return None


def prune(before: datetime.datetime, archive_dir: Path, pruned_by: str, using: str = "default") -> AuditAnchor:
    """Archive and delete the events older than ``before``; see README: Audit log retention.

    1. Refuse a date in the future, and a prune that removes nothing.
    2. Write the prefix of the chain that ends before ``before`` to an archive, checking
       the chain as it goes (a broken chain is not pruned: that would destroy the evidence),
       fsync it, read it back (its chain and SHA-256) from the disk.
    3. In one transaction, holding the chain: record the anchor, delete the archived
       events (the triggers allow it only inside chain.maintenance), and record
       ``audit.pruned`` (once per organization of the pruned events), the first event after
       the anchor or linked after the events kept.
    """
    if before > timezone.now():
        raise PruneError(f"{before:%Y-%m-%d %H:%M} is in the future: only events of the past are pruned.")
    last_anchor = AuditAnchor.objects.using(using).order_by("-seq").first()
    walk = _start(last_anchor)
    upto = cutoff(before, using)
    if upto is None or upto < walk.seq:
        raise PruneError(f"No audit events before {before:%Y-%m-%d %H:%M}: nothing to prune.")
    archive_dir.mkdir(parents=True, exist_ok=True)
    path = archive_dir / f"audit-{walk.seq:012d}-{upto:012d}.jsonl.gz"
    if path.exists():
        raise PruneError(f"{path} exists already: move it away or choose another --archive-dir.")
    first_seq, first_prev = walk.seq, walk.prev_hash
    organizations: dict[Any, str] = {}
    broken = _write_archive(path, using, walk, upto, organizations)
    if broken is not None:
        raise PruneError(
            f"The audit chain is broken at seq {broken.seq} (event id {broken.event_id}): {broken.message}. "
            "Nothing was pruned; run manage.py audit_verify."
        )
    sha256 = file_sha256(path)
    reread = chain.Walk(first_seq, first_prev)
    if chain.check(read_archive(path), reread) is not None or reread.prev_hash != walk.prev_hash:
        raise PruneError(f"{path} does not read back as written: nothing was pruned.")
    anchor = AuditAnchor(
        first_seq=first_seq,
        prev_hash=first_prev,
        seq=upto,
        hash=walk.prev_hash,
        count=walk.count,
        before=before,
        archive_name=path.name,
        archive_sha256=sha256,
        pruned_by=pruned_by,
    )
    try:
        with transaction.atomic(using=using):
            _remove(anchor, last_anchor, using, organizations)
    except BaseException:
        path.unlink()  # the events are all still there
        raise
    return anchor


def _remove(anchor: AuditAnchor, last_anchor: AuditAnchor | None, using: str, organizations: dict[Any, str]) -> None:
    """Step 3 of ``prune``, inside its transaction. ``audit.pruned`` is recorded once per
    organization that had events pruned, so that its auditors see it in their review (which
    shows their organizations' events); once with no organization if none had one."""
    chain.lock(using)
    if AuditAnchor.objects.using(using).order_by("-seq").first() != last_anchor:
        raise PruneError("Another prune ran meanwhile: nothing was pruned by this one.")
    anchor.save(using=using)
    with chain.maintenance(using, "audit_prune"), connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE seq <= %s", [anchor.seq])
        if cursor.rowcount != anchor.count:
            raise PruneError(f"{cursor.rowcount} events to delete, {anchor.count} archived: nothing was pruned.")
    fields = ("first_seq", "seq", "count", "before", "archive_name", "archive_sha256")
    changes = {name: [None, getattr(anchor, name)] for name in fields}
    changes["before"][1] = anchor.before.isoformat()
    recorded = [Recorded(pk, name) for pk, name in organizations.items() if pk is not None] or [None]
    for organization in recorded:
        record(Actor.system(anchor.pruned_by), "audit.pruned", anchor, changes=changes, organization=organization)
