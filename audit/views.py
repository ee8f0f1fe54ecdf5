"""The audit review: the events of the viewer's organizations, filtered; one event; an object's
history; the export of what a filter selects.

Administrators and auditors read the events of their organizations only; an event of another
organization is a 404. Pages go by the events' chain position (seq), newest first, with cursors
instead of page numbers: no COUNT and no OFFSET, so a page costs the same at any depth.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
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
from audit.display import attach_object_urls, object_type_label, object_urls
from audit.filters import AuditFilterForm
from audit.log import Actor, record
from audit.models import AuditAnchor, AuditEvent
from mailboxes.access import ADMIN, AUDITORS, org_ids, role_required
from mailboxes.models import Organization

# Events per query while exporting: memory stays at one batch whatever the export's size.
EXPORT_BATCH = 2000
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


def keyset_page(events: Any, size: int, before: int | None = None, after: int | None = None) -> EventPage:
    """The page of ``events`` older than seq ``before``, newer than seq ``after``, or the newest.

    1. One more event than shown is read: it tells whether a page follows in the direction read.
       Newer pages are read oldest first from the cursor, then turned round.
    2. Whether there is a page the other way is one EXISTS from the page's edge.
    3. Each query is a range scan of an index on seq from the cursor: as fast at any depth.
    """
    if after is not None:
        rows = list(events.filter(seq__gt=after).order_by("seq")[: size + 1])
        newer = rows[size - 1].seq if len(rows) > size else None
        rows = rows[:size][::-1]
        older = rows[-1].seq if rows and events.filter(seq__lt=rows[-1].seq).exists() else None
        return EventPage(rows, newer, older, is_newest=False)
    if before is not None:
        events_before = events.filter(seq__lt=before)
    else:
        events_before = events
    rows = list(events_before.order_by("-seq")[: size + 1])
    older = rows[size - 1].seq if len(rows) > size else None
    rows = rows[:size]
    newer = None
    if before is not None and rows and events.filter(seq__gt=rows[0].seq).exists():
        newer = rows[0].seq
    return EventPage(rows, newer, older, is_newest=before is None)


def _cursor(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() else None


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


def _event_list(request: HttpRequest, status: int = 200, **fixed: str) -> HttpResponse:
    form = _filter_form(request, **fixed)
    page = EventPage([])
    if form.is_valid():
        events = form.filter(AuditEvent.objects.all())
        before, after = _cursor(request, "before"), _cursor(request, "after")
        page = keyset_page(events, settings.PAGE_SIZE, before=before, after=after)
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
    3. The events are read in batches of EXPORT_BATCH by seq (keyset), so memory stays the
       same for any number of events; labels are in the language and time zone of the request.
    """
    form = _filter_form(request)
    if not form.is_valid():
        return _event_list(request, status=400)
    events = form.filter(AuditEvent.objects.all())
    last = AuditEvent.objects.aggregate(last=Max("seq"))["last"]
    _record_export(request, form, fmt)
    batches = _export_batches(events, last)
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
    chosen = form.cleaned_data["organization"]
    organizations = Organization.objects.filter(pk__in=[chosen] if chosen else form.organization_ids)
    changes = {"format": fmt, **form.active()}
    actor = Actor.from_request(request)
    with transaction.atomic():
        for organization in organizations:
            record(actor, "audit.exported", organization, changes=changes, organization=organization)


def _export_batches(events: Any, last: int | None) -> Iterator[list[dict[str, Any]]]:
    """The events up to seq ``last``, oldest first, as export rows: one batch per query."""
    if last is None:
        return
    language, zone = translation.get_language(), timezone.get_current_timezone()
    events = events.filter(seq__lte=last).order_by("seq")
    after = None
    while True:
        batch = list((events if after is None else events.filter(seq__gt=after))[:EXPORT_BATCH])
        with translation.override(language), timezone.override(zone):
            rows = [_export_row(event) for event in batch]
        yield rows
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1].seq


def _export_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "id": str(event.id),
        "time": timezone.localtime(event.time).isoformat(),
        "actor": event.actor_name,
        "actor_id": event.actor_id,
        "ip": event.ip,
        "action": event.action,
        "action_label": event.action_label,
        "object_type": event.object_type,
        "object_type_label": event.object_type_label,
        "object_id": event.object_id,
        "object": event.object_repr,
        "organization_id": str(event.organization_id) if event.organization_id else None,
        "organization": event.organization_name,
        "changes": event.changes,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
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
