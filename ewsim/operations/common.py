"""What every operation needs: the request context, folder/item resolution with access checks,
and folder rendering."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from ..faults import EwsError, access_denied, folder_not_found, item_not_found, malformed_id
from ..model import Folder, Item, Mailbox, well_formed_id
from ..soap import child, child_text, children, el, error_message, local, success_message, t
from ..store import Store


@dataclass
class Context:
    store: Store
    user: Mailbox  # who authenticated
    acting: Mailbox  # whose mailbox the request works on (differs under impersonation)

    def check_mailbox(self, address: str) -> Mailbox:
        """Only the acting mailbox may be touched; say why not the way Exchange does."""
        mailbox = self.store.mailbox(address)
        if mailbox is None:
            raise EwsError("ErrorNonExistentMailbox", f"The SMTP address {address} has no mailbox associated with it.")
        if mailbox.address != self.acting.address:
            raise access_denied()
        return mailbox


def resolve_folder(ctx: Context, elem: etree._Element) -> Folder:
    """A FolderId or DistinguishedFolderId element -> the folder, after access checks."""
    kind = local(elem.tag)
    if kind == "DistinguishedFolderId":
        address = child_text(child(elem, "Mailbox"), "EmailAddress") or ctx.acting.address
        mailbox = ctx.check_mailbox(address.strip())
        folder = ctx.store.distinguished(mailbox.address, elem.get("Id") or "")
        if folder is None:
            raise folder_not_found()
        return folder
    if kind == "FolderId":
        folder = ctx.store.folders.get(checked_id(elem))
        if folder is None:
            raise folder_not_found()
        if folder.mailbox != ctx.acting.address:
            raise access_denied()
        return folder
    raise EwsError("ErrorSchemaValidation", f"Expected a folder id, got {kind!r}")


def target_folder(ctx: Context, holder: etree._Element | None, default: str) -> Folder:
    """The folder named inside a SavedItemFolderId/ToFolderId holder, or the acting mailbox's default."""
    ids = children(holder)
    if ids:
        return resolve_folder(ctx, ids[0])
    folder = ctx.store.distinguished(ctx.acting.address, default)
    if folder is None:
        raise folder_not_found()
    return folder


def checked_id(elem: etree._Element) -> str:
    """The Id attribute of an id element; ErrorInvalidIdMalformed unless it is shaped like our ids."""
    value = elem.get("Id") or ""
    if not well_formed_id(value):
        raise malformed_id()
    return value


def resolve_item(ctx: Context, elem: etree._Element) -> Item:
    item = ctx.store.items.get(checked_id(elem))
    if item is None:
        raise item_not_found()
    if item.mailbox != ctx.acting.address:
        raise access_denied()
    return item


def item_id_elements(holder: etree._Element | None) -> list[etree._Element]:
    return [c for c in children(holder) if local(c.tag) in ("ItemId", "OccurrenceItemId", "RecurringMasterItemId")]


def per_element(operation: str, elements: list, handle: Callable[[object], etree._Element]) -> list[etree._Element]:
    """One response message per request element; an EwsError fails only its own message."""
    messages = []
    for element in elements:
        try:
            messages.append(handle(element))
        except EwsError as exc:
            messages.append(error_message(operation, exc.code, exc.text, exc.values))
    return messages


def ok(operation: str) -> etree._Element:
    return success_message(operation)


def folder_shape_wants(shape: etree._Element | None) -> set[str]:
    base = child_text(shape, "BaseShape") or "Default"
    wanted = {p.get("FieldURI", "").split(":")[-1] for p in children(child(shape, "AdditionalProperties"))}
    if base in ("Default", "AllProperties"):
        wanted |= {"DisplayName", "TotalCount", "ChildFolderCount", "UnreadCount", "FolderClass", "ParentFolderId"}
    if base == "AllProperties":
        wanted.add("DistinguishedFolderId")
    return wanted


def render_folder(store: Store, folder: Folder, wanted: set[str]) -> etree._Element:
    out = etree.Element(t(folder.kind))
    el(out, "t:FolderId", Id=folder.id, ChangeKey=folder.changekey)
    parent = store.folders.get(folder.parent_id or "")
    if parent is not None and "ParentFolderId" in wanted:
        el(out, "t:ParentFolderId", Id=parent.id, ChangeKey=parent.changekey)
    if folder.folder_class and "FolderClass" in wanted:
        el(out, "t:FolderClass", folder.folder_class)
    if "DisplayName" in wanted:
        el(out, "t:DisplayName", folder.name)
    items = store.folder_item_list(folder.id)
    if "TotalCount" in wanted:
        el(out, "t:TotalCount", str(len(items)))
    if "ChildFolderCount" in wanted:
        el(out, "t:ChildFolderCount", str(len(store.child_folders(folder.id))))
    if folder.distinguished and "DistinguishedFolderId" in wanted:
        el(out, "t:DistinguishedFolderId", folder.distinguished)
    if "UnreadCount" in wanted and folder.kind in ("Folder", "TasksFolder"):
        el(out, "t:UnreadCount", str(sum(1 for i in items if not i.is_read)))
    return out
