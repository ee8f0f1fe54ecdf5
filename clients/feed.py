"""The client feeds: ``GET /api/v1/changes`` and ``GET /api/v1/offline``.

A pull returns the records the instance's filters select that changed since its cursor, as
``{"type", "id", "version", "deleted", "fields"}``, and the cursor to pull with next time.

The cursor, and the records that commit late
--------------------------------------------
A plain "updated_at > last seen" cursor loses changes: a transaction that stamped a record at
10:00:00 and committed at 10:00:05 is invisible to a pull at 10:00:03, and that pull's cursor
is already past 10:00:00. So:

1. Every record change is read again for OVERLAP (CLIENT_API_OVERLAP_SECONDS, 60 s, as the sync
   engine does) after a pull: a sweep reads the records with ``updated_at >= since``, where
   ``since`` is the time of the previous sweep's first read *minus OVERLAP*. A record that was
   not yet committed at that read was stamped at most OVERLAP before it (the assumption: no
   transaction that writes CRM records stays open longer), so the next sweep finds it.
2. Records already delivered in that window come again; the client keeps the higher
   ``version`` of each record (versions only grow), so a repeat changes nothing.
3. A sweep is paged by keyset, ordered by ``(updated_at, type, id)``: a page holds at most
   ``limit`` changes and the cursor continues after its last one. A page with fewer than
   ``limit`` changes ends the sweep: the client is caught up (re-delivered changes included).
4. The cursor is opaque: signed (django.core.signing), bound to the instance and feed, holding
   ``since``, the keyset position, the lowest "read time minus OVERLAP" of the sweep so far,
   and the *epoch* of the filters it was made under.

What "deleted" means for a client
---------------------------------
5. A record goes out as ``deleted: true`` (``fields: null``) when the instance has received it
   before (``HeldRecord``) and it no longer goes to the client: soft-deleted, out of the
   filters, owned by someone else now (for a plain user), or the user lost the role. Records
   the client never had produce no deletes.
6. Records can leave (or enter) the filters without changing: the filters were edited, or a
   date relative to today moved. The scope's *epoch* changes then; a cursor from another
   epoch starts a full reconcile sweep (every selected record, and a delete for every held
   record no longer selected).
7. An empty cursor is a client that holds nothing: the held set is cleared and the sweep
   sends every selected record.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, Value
from django.utils import timezone
from django.utils.translation import gettext as _

from clients.models import ClientError, ClientInstance, HeldRecord
from clients.records import json_value
from clients.scope import Scope, feed_scope
from crm.directions import SYNC_FIELDS
from crm.models import SYNCED_MODELS

SALT = "clients.feed.cursor"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class BadCursor(ClientError):
    pass


def overlap() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.CLIENT_API_OVERLAP_SECONDS)


@dataclass(frozen=True)
class Cursor:
    epoch: str
    since: datetime.datetime | None  # None: the sweep reads every selected record
    after: tuple[datetime.datetime, str, uuid.UUID] | None  # keyset position within the sweep
    low: datetime.datetime | None  # min(read time - OVERLAP) over the sweep's pages so far


def _micros(value: datetime.datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // datetime.timedelta(microseconds=1)


def _time(value: int | None) -> datetime.datetime | None:
    return None if value is None else EPOCH + datetime.timedelta(microseconds=value)


def encode_cursor(instance: ClientInstance, feed: str, cursor: Cursor) -> str:
    after = None
    if cursor.after is not None:
        after = [_micros(cursor.after[0]), cursor.after[1], str(cursor.after[2])]
    payload = {
        "i": str(instance.pk),
        "f": feed,
        "e": cursor.epoch,
        "s": _micros(cursor.since),
        "a": after,
        "l": _micros(cursor.low),
    }
    return signing.dumps(payload, salt=SALT, compress=True)


def decode_cursor(text: str, instance: ClientInstance, feed: str) -> Cursor | None:
    """The cursor a client sent back, or None for an empty one; BadCursor if it is not ours."""
    if not text:
        return None
    bad = BadCursor(_("This cursor is not valid for this client: pull with an empty cursor to start again."))
    try:
        payload = signing.loads(text, salt=SALT)
        if payload["i"] != str(instance.pk) or payload["f"] != feed:
            raise bad
        after = payload["a"]
        if after is not None:
            after = (_time(int(after[0])), str(after[1]), uuid.UUID(after[2]))
        return Cursor(payload["e"], _time(payload["s"]), after, _time(payload["l"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError, IndexError):
        raise bad from None


def _after(record_type: str, after: tuple[datetime.datetime, str, uuid.UUID]) -> Q:
    """Rows of one type that come after a keyset position ordered by (updated_at, type, id)."""
    at, after_type, after_id = after
    if record_type > after_type:
        return Q(updated_at__gte=at)
    if record_type < after_type:
        return Q(updated_at__gt=at)
    return Q(updated_at__gt=at) | Q(updated_at=at, pk__gt=after_id)


def _candidates(instance: ClientInstance, feed: str, scope: Scope, record_type: str, cursor: Cursor, limit: int) -> Any:
    """Up to limit + 1 rows of one type for this page: selected now, or held by the client."""
    model = SYNCED_MODELS[record_type]
    selects = scope.selects(record_type)
    held = Exists(
        HeldRecord.objects.filter(instance=instance, feed=feed, record_type=record_type, record_id=OuterRef("pk"))
    )
    rows = model.all_objects.filter(organization=scope.organization)
    rows = rows.filter(Q(selects) | Q(held)) if selects is not None else rows.filter(held)
    if cursor.since is not None:
        rows = rows.filter(updated_at__gte=cursor.since)
    if cursor.after is not None:
        rows = rows.filter(_after(record_type, cursor.after))
    live = ExpressionWrapper(selects, output_field=BooleanField()) if selects is not None else Value(False)
    rows = rows.annotate(live=live, held=held).order_by("updated_at", "pk")
    return rows.values("id", "version", "updated_at", "live", "held", *SYNC_FIELDS[record_type])[: limit + 1]


def pull(
    instance: ClientInstance, feed: str, cursor_text: str, limit: int, now: datetime.datetime | None = None
) -> tuple[list[dict[str, Any]], str]:
    """One page of a feed and the cursor for the next pull (see the module's docstring).

    1. Work out the scope (filters and visibility) and its epoch; read the cursor. An empty
       cursor clears what the instance holds; a cursor of another epoch starts a reconcile.
    2. Read up to limit + 1 candidates of each type after the cursor, merge them in
       (updated_at, type, id) order, keep the first ``limit``.
    3. A full page continues the sweep after its last row; a shorter one ends it, and the
       next sweep starts at the sweep's earliest read minus OVERLAP.
    4. Remember the records sent as live (HeldRecord), then answer.
    """
    now = now or timezone.now()
    scope = feed_scope(instance, feed, timezone.localdate(now))
    cursor = decode_cursor(cursor_text, instance, feed)
    if cursor is None:
        HeldRecord.objects.filter(instance=instance, feed=feed).delete()
    if cursor is None or cursor.epoch != scope.epoch:
        cursor = Cursor(scope.epoch, since=None, after=None, low=None)

    rows = []
    for record_type in SYNCED_MODELS:
        rows += [
            (row["updated_at"], str(record_type), row["id"], row)
            for row in _candidates(instance, feed, scope, record_type, cursor, limit)
        ]
    rows.sort(key=lambda r: r[:3])
    more = len(rows) > limit
    page = rows[:limit]

    read_low = now - overlap()
    low = read_low if cursor.low is None else min(cursor.low, read_low)
    if more:
        last = page[-1]
        following = Cursor(scope.epoch, since=cursor.since, after=(last[0], last[1], last[2]), low=low)
    else:
        following = Cursor(scope.epoch, since=low, after=None, low=None)

    newly_held = [
        HeldRecord(instance=instance, feed=feed, record_type=record_type, record_id=pk)
        for _at, record_type, pk, row in page
        if row["live"] and not row["held"]
    ]
    if newly_held:
        HeldRecord.objects.bulk_create(newly_held, ignore_conflicts=True)

    changes = [
        {
            "type": record_type,
            "id": str(pk),
            "version": row["version"],
            "deleted": not row["live"],
            "fields": {name: json_value(row[name]) for name in SYNC_FIELDS[record_type]} if row["live"] else None,
        }
        for _at, record_type, pk, row in page
    ]
    return changes, encode_cursor(instance, feed, following)
