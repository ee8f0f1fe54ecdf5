"""FindItem: paging (IndexedPageItemView, CalendarView), restrictions and sort order."""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from ..faults import EwsError
from ..items import Shape, render_item
from ..model import Item
from ..restrictions import restriction_filter, sort_items, sort_key
from ..soap import child, child_text, children, el
from .common import Context, ok, per_element, resolve_folder


def _parse_time(text: str | None) -> datetime:
    try:
        return datetime.fromisoformat((text or "").replace("Z", "+00:00"))
    except ValueError:
        raise EwsError("ErrorInvalidRequest", f"Bad date/time {text!r} in CalendarView") from None


def _in_calendar_view(item: Item, view: etree._Element) -> bool:
    """Items overlapping the window (recurrences are not expanded). As in Exchange, an item ending exactly
    at the window's start is included; one starting exactly at its end is not."""
    if item.kind != "CalendarItem" or "Start" not in item.fields or "End" not in item.fields:
        return False
    start, end = _parse_time(item.text("Start")), _parse_time(item.text("End"))
    return start < _parse_time(view.get("EndDate")) and end >= _parse_time(view.get("StartDate"))


def _query_matches(item: Item, query: str) -> bool:
    """AQS stand-in: every word must occur in the subject or the body (no AQS syntax)."""
    text = f"{item.text('Subject') or ''} {item.text('Body') or ''}".casefold()
    return all(word in text for word in query.split())


def _page(found: list[Item], op: etree._Element) -> tuple[list[Item], int]:
    """The slice the view asks for and the offset of the next page."""
    view = child(op, "IndexedPageItemView")
    calendar_view = child(op, "CalendarView")
    if calendar_view is not None:
        limit = int(calendar_view.get("MaxEntriesReturned") or 0)
        page = found[:limit] if limit else found
        return page, len(page)
    if view is None:
        return found, len(found)
    try:
        offset = int(view.get("Offset", "0"))
        limit = int(view.get("MaxEntriesReturned") or 0)
    except ValueError:
        raise EwsError("ErrorInvalidRequest", "Offset and MaxEntriesReturned must be integers") from None
    if view.get("BasePoint", "Beginning") == "End":
        offset = max(len(found) - offset - (limit or len(found)), 0)
    page = found[offset : offset + limit] if limit else found[offset:]
    return page, offset + len(page)


def find_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    shape = Shape.parse(child(op, "ItemShape"))
    accept = restriction_filter(child(op, "Restriction"))
    order = sort_key(child(op, "SortOrder"))
    calendar_view = child(op, "CalendarView")
    query = (child_text(op, "QueryString") or "").strip().casefold()

    def handle(id_elem: etree._Element) -> etree._Element:
        folder = resolve_folder(ctx, id_elem)
        found = [i for i in ctx.store.folder_item_list(folder.id) if accept(i)]
        if calendar_view is not None:
            found = [i for i in found if _in_calendar_view(i, calendar_view)]
        if query:
            found = [i for i in found if _query_matches(i, query)]
        if order:
            found = sort_items(found, order)
        page, next_offset = _page(found, op)
        msg = ok("FindItem")
        root = el(
            msg,
            "m:RootFolder",
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange="true" if next_offset >= len(found) else "false",
            IndexedPagingOffset=str(next_offset),
        )
        items = el(root, "t:Items")
        for item in page:
            items.append(render_item(item, shape, folder.changekey, item.mailbox))
        return msg

    return per_element("FindItem", children(child(op, "ParentFolderIds")), handle)
