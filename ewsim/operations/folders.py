"""Folder operations: GetFolder, FindFolder, CreateFolder, DeleteFolder, SyncFolderHierarchy."""

from __future__ import annotations

from lxml import etree

from ..faults import EwsError
from ..model import FOLDER_KIND_BY_CLASS
from ..soap import child, child_text, children, el, local
from ..store import HIERARCHY
from .common import Context, folder_shape_wants, ok, per_element, render_folder, resolve_folder
from .sync import sync_error

CLASS_BY_FOLDER_KIND = {kind: cls for cls, kind in FOLDER_KIND_BY_CLASS.items()}


def get_folder(ctx: Context, op: etree._Element) -> list[etree._Element]:
    wanted = folder_shape_wants(child(op, "FolderShape"))

    def handle(id_elem: etree._Element) -> etree._Element:
        folder = resolve_folder(ctx, id_elem)
        msg = ok("GetFolder")
        el(msg, "m:Folders").append(render_folder(ctx.store, folder, wanted))
        return msg

    return per_element("GetFolder", children(child(op, "FolderIds")), handle)


def find_folder(ctx: Context, op: etree._Element) -> list[etree._Element]:
    wanted = folder_shape_wants(child(op, "FolderShape"))
    deep = op.get("Traversal", "Shallow") == "Deep"
    view = child(op, "IndexedPageFolderView")
    offset = int(view.get("Offset", "0")) if view is not None else 0
    limit = int(view.get("MaxEntriesReturned", "0") or 0) if view is not None else 0
    # A folder Restriction is accepted but not applied: exchangelib only sends one for folder filter().

    def handle(id_elem: etree._Element) -> etree._Element:
        parent = resolve_folder(ctx, id_elem)
        found = list(ctx.store.descendants(parent.id)) if deep else ctx.store.child_folders(parent.id)
        page = found[offset : offset + limit] if limit else found[offset:]
        msg = ok("FindFolder")
        root = el(
            msg,
            "m:RootFolder",
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange="true" if offset + len(page) >= len(found) else "false",
            IndexedPagingOffset=str(offset + len(page)),
        )
        folders = el(root, "t:Folders")
        for folder in page:
            folders.append(render_folder(ctx.store, folder, wanted))
        return msg

    return per_element("FindFolder", children(child(op, "ParentFolderIds")), handle)


def create_folder(ctx: Context, op: etree._Element) -> list[etree._Element]:
    parent = resolve_folder(ctx, children(child(op, "ParentFolderId"))[0])

    def handle(spec: etree._Element) -> etree._Element:
        name = (child_text(spec, "DisplayName") or "").strip()
        if not name:
            raise EwsError("ErrorInvalidFolderName", "A folder needs a display name.")
        if any(f.name.lower() == name.lower() for f in ctx.store.child_folders(parent.id)):
            text = f"A folder with the specified name already exists., Could not create folder '{name}'."
            raise EwsError("ErrorFolderExists", text)
        # A typed folder element implies its class; a plain Folder without FolderClass has none (as in Exchange).
        kind = local(spec.tag)
        folder_class = child_text(spec, "FolderClass") or CLASS_BY_FOLDER_KIND.get(kind)
        if kind == "Folder":
            kind = FOLDER_KIND_BY_CLASS.get(folder_class or "", "Folder")
        folder = ctx.store.create_folder(ctx.acting.address, parent.id, name, folder_class, kind)
        msg = ok("CreateFolder")
        out = el(el(msg, "m:Folders"), f"t:{folder.kind}")
        el(out, "t:FolderId", Id=folder.id, ChangeKey=folder.changekey)
        return msg

    return per_element("CreateFolder", children(child(op, "Folders")), handle)


def delete_folder(ctx: Context, op: etree._Element) -> list[etree._Element]:
    def handle(id_elem: etree._Element) -> etree._Element:
        folder = resolve_folder(ctx, id_elem)
        if folder.distinguished:
            raise EwsError("ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
        for sub in [folder, *ctx.store.descendants(folder.id)]:
            for item in ctx.store.folder_item_list(sub.id):
                ctx.store.remove_item(item)
            ctx.store.remove_folder(sub)
        return ok("DeleteFolder")

    return per_element("DeleteFolder", children(child(op, "FolderIds")), handle)


def sync_folder_hierarchy(ctx: Context, op: etree._Element) -> list[etree._Element]:
    try:
        return [_sync_hierarchy(ctx, op)]
    except EwsError as exc:
        return [sync_error("SyncFolderHierarchy", "IncludesLastFolderInRange", exc)]


def _sync_hierarchy(ctx: Context, op: etree._Element) -> etree._Element:
    """Folders below the sync folder (default: root) created, changed or deleted since the state."""
    wanted = folder_shape_wants(child(op, "FolderShape"))
    id_holder = child(op, "SyncFolderId")
    base = (
        resolve_folder(ctx, children(id_holder)[0])
        if children(id_holder)
        else ctx.store.distinguished(ctx.acting.address, "root")
    )
    assert base is not None
    state = (child_text(op, "SyncState") or "").strip()
    scope = "hierarchy:" + base.id
    since = ctx.store.read_sync_state(state, ctx.acting.address, scope) if state else 0
    below = {f.id for f in ctx.store.descendants(base.id)}
    msg = ok("SyncFolderHierarchy")
    changes_parent = etree.Element("placeholder")
    seen: set[str] = set()
    for event in ctx.store.events_after(ctx.acting.address, HIERARCHY, since):
        if event.item_id in seen:
            continue
        seen.add(event.item_id)
        folder = ctx.store.folders.get(event.item_id)
        existed = since > 0 and ctx.store.was_member(HIERARCHY, event.item_id, since)
        if folder is None or event.item_id not in below:
            if existed:
                el(el(changes_parent, "t:Delete"), "t:FolderId", Id=event.item_id)
            continue
        change = el(changes_parent, "t:Update" if existed else "t:Create")
        change.append(render_folder(ctx.store, folder, wanted))
    el(msg, "m:SyncState", ctx.store.make_sync_state(ctx.acting.address, scope, ctx.store.seq))
    el(msg, "m:IncludesLastFolderInRange", "true")
    changes = el(msg, "m:Changes")
    for change in list(changes_parent):
        changes.append(change)
    return msg
