"""The audit review: the events of the viewer's organizations, filtered; one event; an object's
history; the export of what a filter selects.

Administrators and auditors read the events of their organizations only; an event of another
organization is a 404. Pages go by the events' chain position (seq), newest first, with cursors
instead of page numbers: no COUNT and no OFFSET, so a page costs the same at any depth.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django.views.decorators.http import require_GET

from audit import chain
from audit.actions import action_label
from audit.display import attach_object_urls, object_type_label, object_urls
from audit.filters import AuditFilterForm
from audit.log import Actor, record
from audit.models import AuditAnchor, AuditEvent
from mailboxes.access import ADMIN, AUDITORS, org_ids, role_required
from mailboxes.models import Organization

# The pages read the events in windows of chain positions (seq), this wide at first (_scan);
# the export in windows of EXPORT_WINDOW: memory stays at one window whatever the export's size.
WINDOW = 20_000
EXPORT_WINDOW = 5_000
EXPORT_FIELDS = (
    "seq",
    "id",
    "time",
    "actor",
    "actor_id",
    "ip",
    "action",
    "action_label",
    "object_type",
    "object_type_label",
    "object_id",
    "object",
    "organization_id",
    "organization",
    "changes",
    "prev_hash",
    "hash",
)
# What the rows are made of, read from the database (seq first: the batches' cursor).
EXPORT_COLUMNS = (
    "seq",
    "id",
    "time",
    "actor_name",
    "actor_id",
    "ip",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "organization_id",
    "organization_name",
    "changes",
    "prev_hash",
    "hash",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class EventPage:
    """One page of events, newest first, and the cursors of the pages beside it."""

    object_list: list[AuditEvent]
    newer: int | None = None  # the newer page: the events after this seq
    older: int | None = None  # the older page: the events before this seq
    is_newest: bool = True  # asked without a cursor


@dataclass(frozen=True)
class Subject:
    """The object whose history a page shows."""

    object_type: str
    object_id: str
    type_label: str
    name: str
    url: str | None


@dataclass(frozen=True)
class ChainCheck:
    """What one event's hashes say: its content is as hashed, and it links to the event
    before it (None: that event is not in the database: pruned, or deleted)."""

    content_intact: bool
    linked: bool | None

    @classmethod
    def of(cls, event: AuditEvent) -> ChainCheck:
        before = event.seq - 1
        previous = AuditEvent.objects.filter(seq=before).values_list("hash", flat=True).first()
        if previous is None:
            previous = AuditAnchor.objects.filter(seq=before).values_list("hash", flat=True).first()
        if previous is None and before == 0:
            previous = chain.GENESIS
        return cls(
            content_intact=chain.digest(event.chain_fields()) == event.hash,
            linked=None if previous is None else previous == event.prev_hash,
        )


def keyset_page(
    select: Callable[..., list[Any]], size: int, before: int | None = None, after: int | None = None
) -> EventPage:
    """The page of events older than seq ``before``, newer than seq ``after``, or the newest.

    ``select(after=, before=)`` gives the querysets whose events together make the list (one
    per organization), with seq between the two.
    1. One more event than shown is read: it tells whether a page follows in the direction read.
       Newer pages are read oldest first from the cursor, then turned round.
    2. Whether there is a page the other way is one event looked for from the page's edge.
    3. Every query is a range of seq from the cursor (``_scan``): as fast at any depth.
    """
    if after is not None:
        rows = _scan(select, size + 1, after=after, descending=False)
        newer = rows[size - 1].seq if len(rows) > size else None
        rows = rows[:size][::-1]
        older = rows[-1].seq if rows and _scan(select, 1, before=rows[-1].seq) else None
        return EventPage(rows, newer, older, is_newest=False)
    rows = _scan(select, size + 1, before=before)
    older = rows[size - 1].seq if len(rows) > size else None
    rows = rows[:size]
    newer = None
    if before is not None and rows and _scan(select, 1, after=rows[0].seq, descending=False):
        newer = rows[0].seq
    return EventPage(rows, newer, older, is_newest=before is None)


def _scan(
    select: Callable[..., list[Any]],
    limit: int,
    after: int | None = None,
    before: int | None = None,
    descending: bool = True,
) -> list[AuditEvent]:
    """The first ``limit`` events with seq between ``after`` and ``before``, newest first
    (``descending``) or oldest first.

    1. The events are read in windows of seq from the cursor on, WINDOW wide at first and four
       times wider each time, until there are enough.
    2. Each query reads at most its window, along the (organization, seq) index or another
       filter's. A single query with a LIMIT would leave the database to guess how far it must
       read: for a free-text search (no index can answer it), PostgreSQL, expecting few
       matches, reads and sorts all of an organization's events.
    3. In each window, the organizations' events are merged by seq.
    """
    low = after if after is not None else 0
    high = before if before is not None else _next_seq()
    found: list[AuditEvent] = []
    width = WINDOW
    while len(found) < limit and high - low > 1:
        if descending:
            edge = max(low, high - width)
            parts, high = select(after=edge, before=high), edge + 1
        else:
            edge = min(high, low + width)
            parts, low = select(after=low, before=edge), edge - 1
        ordered = [part.order_by("-seq" if descending else "seq")[: limit - len(found)] for part in parts]
        found += islice(heapq.merge(*ordered, key=attrgetter("seq"), reverse=descending), limit - len(found))
        width *= 4
    return found


def _next_seq() -> int:
    return (AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0) + 1


# A cursor is a seq: a bigint, at most 18 digits. Anything else ("²" is a digit to isdigit, but
# not to int; 5,000 digits is over Python's int() limit) is no cursor: the newest page.
CURSOR_DIGITS = 18


def _cursor(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isascii() and value.isdecimal() and len(value) <= CURSOR_DIGITS else None


def _filter_form(request: HttpRequest, **fixed: str) -> AuditFilterForm:
    data = request.GET.copy()
    for name, value in fixed.items():
        data[name] = value
    ids = org_ids(request.user, AUDITORS)
    organizations = Organization.objects.filter(pk__in=ids).order_by("name").values_list("pk", "name")
    return AuditFilterForm(data, organizations=list(organizations))


def _subject(form: AuditFilterForm, request: HttpRequest) -> Subject | None:
    """The object the form selects, named as its newest event the viewer may read names it, and
    linked while it exists and the viewer may open its page."""
    if not form.is_valid() or not form.cleaned_data["object_id"]:
        return None
    object_type, object_id = form.cleaned_data["object_type"], form.cleaned_data["object_id"]
    events = AuditEvent.objects.filter(
        object_type=object_type, object_id=object_id, organization_id__in=form.organization_ids
    )
    name = events.order_by("-seq").values_list("object_repr", flat=True).first() or object_id
    probe = AuditEvent(object_type=object_type, object_id=object_id)
    url = object_urls([probe], org_ids(request.user, ADMIN)).get((object_type, object_id))
    return Subject(object_type, object_id, object_type_label(object_type), name, url)


def _selector(form: AuditFilterForm) -> Callable[..., list[Any]]:
    """The form's events, per organization, between two seqs: what a page reads."""

    def select(after: int | None = None, before: int | None = None) -> list[Any]:
        return [form.events_of(organization, after, before) for organization in form.organizations()]

    return select


def _event_list(request: HttpRequest, status: int = 200, **fixed: str) -> HttpResponse:
    form = _filter_form(request, **fixed)
    page = EventPage([])
    if form.is_valid():
        before, after = _cursor(request, "before"), _cursor(request, "after")
        page = keyset_page(_selector(form), settings.PAGE_SIZE, before=before, after=after)
        attach_object_urls(page.object_list, org_ids(request.user, ADMIN))
    ctx = {
        "form": form,
        "page": page,
        "subject": _subject(form, request),
        "fixed": fixed,
        "query": form.query(),
    }
    return render(request, "audit/log.html", ctx, status=status)


@require_GET
@role_required(*AUDITORS)
def audit_log(request: HttpRequest) -> HttpResponse:
    """The events of the person's organizations, newest first, as the filter form selects."""
    return _event_list(request)


@require_GET
@role_required(*AUDITORS)
def object_history(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    """The events of one object, through the same filters."""
    return _event_list(request, object_type=object_type, object_id=object_id)


def get_event_for_user(request: HttpRequest, pk: Any) -> AuditEvent:
    """An event of one of the organizations whose log the person reads; any other is a 404."""
    event = AuditEvent.objects.filter(pk=pk, organization_id__in=org_ids(request.user, AUDITORS)).first()
    if event is None:
        raise Http404
    return event


@require_GET
@role_required(*AUDITORS)
def event_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    """One event: who, when, from where, what changed, and its place in the hash chain."""
    event = get_event_for_user(request, pk)
    attach_object_urls([event], org_ids(request.user, ADMIN))
    ctx = {
        "event": event,
        "chain": ChainCheck.of(event),
        "person_query": urlencode({"person": event.actor_name}),
        "action_query": urlencode({"action": event.action}),
    }
    return render(request, "audit/event.html", ctx)


@require_GET
@role_required(*AUDITORS)
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The events the filter selects as CSV or JSON lines, oldest first, streamed.

    1. An invalid filter gets the page with its errors (400), and no export.
    2. The export is audited first: one "audit.exported" event per organization it covers,
       with the filter; the export stops at the newest event before them.
    3. The events are read in windows of EXPORT_WINDOW chain positions, so memory stays the
       same for any number of events; labels are in the language and time zone of the request.
    """
    form = _filter_form(request)
    if not form.is_valid():
        return _event_list(request, status=400)
    last = _next_seq() - 1
    _record_export(request, form, fmt)
    batches = _export_batches(form, last)
    if fmt == "csv":
        content: Iterator[str] = _csv_chunks(batches)
        content_type = "text/csv; charset=utf-8"
    else:
        content = ("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in batch) for batch in batches)
        content_type = "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(content, content_type=content_type)
    filename = f"audit-log-{timezone.localdate():%Y-%m-%d}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _record_export(request: HttpRequest, form: AuditFilterForm, fmt: str) -> None:
    organizations = Organization.objects.filter(pk__in=form.organizations())
    changes = {"format": fmt, **form.active()}
    actor = Actor.from_request(request)
    with transaction.atomic():
        for organization in organizations:
            record(actor, "audit.exported", organization, changes=changes, organization=organization)


def _export_batches(form: AuditFilterForm, last: int) -> Iterator[list[dict[str, Any]]]:
    """The selected events up to seq ``last``, oldest first, as export rows: a batch per window
    of EXPORT_WINDOW chain positions.

    Each window is one query per organization, for at most EXPORT_WINDOW events, whatever the
    filter (as ``_scan``). The events are read as plain values, not model instances, and each
    action's and object type's label is looked up once per export: what a row costs is then
    mostly writing it out.
    """
    language, zone = translation.get_language(), timezone.get_current_timezone()
    labels: dict[str, str] = {}
    for low in range(0, last, EXPORT_WINDOW):
        high = min(low + EXPORT_WINDOW, last) + 1
        parts = [
            form.events_of(organization, after=low, before=high).order_by("seq").values_list(*EXPORT_COLUMNS)
            for organization in form.organizations()
        ]
        values = list(heapq.merge(*parts, key=itemgetter(0)))
        if values:
            with translation.override(language), timezone.override(zone):
                rows = [_export_row(row, labels) for row in values]
            yield rows


def _label(labels: dict[str, str], key: str, function: Any) -> str:
    found = labels.get(key)
    if found is None:
        found = labels[key] = function(key.partition(":")[2])
    return found


def _export_row(values: tuple[Any, ...], labels: dict[str, str]) -> dict[str, Any]:
    row = dict(zip(EXPORT_COLUMNS, values, strict=True))
    return {
        "seq": row["seq"],
        "id": str(row["id"]),
        "time": timezone.localtime(row["time"]).isoformat(),
        "actor": row["actor_name"],
        "actor_id": row["actor_id"],
        "ip": row["ip"],
        "action": row["action"],
        "action_label": _label(labels, f"action:{row['action']}", action_label),
        "object_type": row["object_type"],
        "object_type_label": _label(labels, f"type:{row['object_type']}", object_type_label),
        "object_id": row["object_id"],
        "object": row["object_repr"],
        "organization_id": str(row["organization_id"]) if row["organization_id"] else None,
        "organization": row["organization_name"],
        "changes": row["changes"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


class _Echo:
    """A file for csv.writer that hands back what it is given."""

    def write(self, value: str) -> str:
        return value


def _csv_chunks(batches: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    """A header, then the lines of each batch; a byte order mark first, for spreadsheets to read
    the text as UTF-8."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(EXPORT_FIELDS)
    for batch in batches:
        yield "".join(writer.writerow([_csv_cell(row[name]) for name in EXPORT_FIELDS]) for row in batch)


def _csv_cell(value: Any) -> str:
    """A value as CSV text that no spreadsheet runs as a formula."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
