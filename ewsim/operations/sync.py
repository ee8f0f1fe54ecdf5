"""SyncFolderItems: item changes in one folder since a sync state, paged by MaxChangesReturned.

A sync state stands for a change number of the store's change log. A call walks the folder's log
from there, gathering the changed items in order of their first change until MaxChangesReturned
distinct items are found, and reports each gathered item once, by comparing whether it was in the
folder at the old state with whether it is there at the new one:
absent -> present = Create, present -> absent = Delete, present -> present = Update (or
ReadFlagChange when only the read flag changed), absent -> absent = nothing.
"""

from __future__ import annotations

from lxml import etree

from ..faults import EwsError
from ..items import Shape, render_item
from ..model import ADD, READ, REMOVE, Event
from ..soap import child, child_text, children, el, error_message
from .common import Context, item_id_elements, ok, resolve_folder

MAX_CHANGES = 512  # Exchange's documented ceiling for MaxChangesReturned


def _gather(events: list[Event], limit: int) -> tuple[dict[str, list[Event]], int | None, bool]:
    """Events of the first `limit` distinct items: (events per item, seq of the last event taken, all taken?)."""
    touched: dict[str, list[Event]] = {}
    last_seq = None
    for event in events:
        if event.item_id not in touched and len(touched) >= limit:
            return touched, last_seq, False
        touched.setdefault(event.item_id, []).append(event)
        last_seq = event.seq
    return touched, last_seq, True


def _change_kind(existed: bool, item_events: list[Event]) -> str | None:
    membership = [e.kind for e in item_events if e.kind in (ADD, REMOVE)]
    exists = membership[-1] == ADD if membership else existed
    if not existed:
        return "Create" if exists else None
    if not exists:
        return "Delete"
    if membership or any(e.kind not in (READ,) for e in item_events):
        return "Update"
    return "ReadFlagChange"


def _max_changes(op: etree._Element) -> int:
    text = child_text(op, "MaxChangesReturned")
    try:
        value = int(text or "")
    except ValueError:
        raise EwsError("ErrorSchemaValidation", "MaxChangesReturned must be an integer.") from None
    if not 1 <= value <= MAX_CHANGES:
        raise EwsError("ErrorInvalidArgument", f"MaxChangesReturned must be between 1 and {MAX_CHANGES}.")
    return value


def sync_folder_items(ctx: Context, op: etree._Element) -> list[etree._Element]:
    try:
        return [_sync(ctx, op)]
    except EwsError as exc:
        return [sync_error("SyncFolderItems", "IncludesLastItemInRange", exc)]


def sync_error(operation: str, last_name: str, exc: EwsError) -> etree._Element:
    """Sync errors carry an empty SyncState and IncludesLast...InRange=true, as Exchange sends them."""
    msg = error_message(operation, exc.code, exc.text, exc.values)
    el(msg, "m:SyncState")
    el(msg, f"m:{last_name}", "true")
    return msg


def _sync(ctx: Context, op: etree._Element) -> etree._Element:
    shape = Shape.parse(child(op, "ItemShape"))
    ids = children(child(op, "SyncFolderId"))
    if not ids:
        raise EwsError("ErrorSchemaValidation", "SyncFolderId is required.")
    folder = resolve_folder(ctx, ids[0])
    limit = _max_changes(op)
    scope = "items:" + folder.id
    state = (child_text(op, "SyncState") or "").strip()
    since = ctx.store.read_sync_state(state, ctx.acting.address, scope) if state else 0
    ignore = {e.get("Id") for e in item_id_elements(child(op, "Ignore"))}
    touched, last_seq, complete = _gather(ctx.store.events_after(ctx.acting.address, folder.id, since), limit)
    new_seq = ctx.store.seq if complete else (last_seq if last_seq is not None else since)
    msg = ok("SyncFolderItems")
    el(msg, "m:SyncState", ctx.store.make_sync_state(ctx.acting.address, scope, new_seq))
    el(msg, "m:IncludesLastItemInRange", "true" if complete else "false")
    changes = el(msg, "m:Changes")
    for item_id, item_events in touched.items():
        if item_id in ignore:
            continue
        _report(
            ctx,
            changes,
            folder.id,
            item_id,
            _change_kind(ctx.store.was_member(folder.id, item_id, since), item_events),
            shape,
        )
    return msg


def _report(
    ctx: Context, changes: etree._Element, folder_id: str, item_id: str, kind: str | None, shape: Shape
) -> None:
    if kind is None:
        return
    if kind == "Delete":
        el(el(changes, "t:Delete"), "t:ItemId", Id=item_id)
        return
    item = ctx.store.items.get(item_id)
    if item is None or item.folder_id != folder_id:
        return  # gone again after this page's window; a later page reports the removal
    if kind == "ReadFlagChange":
        change = el(changes, "t:ReadFlagChange")
        el(change, "t:ItemId", Id=item.id, ChangeKey=item.changekey)
        el(change, "t:IsRead", "true" if item.is_read else "false")
        return
    parent = ctx.store.folders[folder_id]
    el(changes, f"t:{kind}").append(render_item(item, shape, parent.changekey, item.mailbox))
