"""Item operations: CreateItem, GetItem, UpdateItem, DeleteItem, MoveItem, CopyItem, SendItem."""

from __future__ import annotations

import copy
import uuid

from lxml import etree

from ..faults import EwsError
from ..items import (
    INDEXED_CONTAINERS,
    Shape,
    apply_property,
    find_path,
    finish_item,
    item_from_xml,
    mailbox_addresses,
    normalize,
    parse_path,
    render_item,
    truncate_leaves,
)
from ..model import ITEM_KINDS, Item, copy_attachments
from ..soap import child, children, el, local, t
from .common import Context, item_id_elements, ok, per_element, resolve_item, target_folder

DEFAULT_FOLDER = {
    "Message": "drafts",
    "CalendarItem": "calendar",
    "Contact": "contacts",
    "Task": "tasks",
    "Item": "drafts",
}
SEND_DISPOSITIONS = ("SendOnly", "SendAndSaveCopy")
# Updates that leave a message's content (and so its original MIME) as it was.
KEEPS_MIME = {"Categories", "IsRead", "Flag", "MimeContent", "Importance", "Sensitivity"}


def _id_only(item: Item) -> etree._Element:
    """The item's id, and its attachments' ids (clients match them to the attachments they sent)."""
    out = etree.Element(t(item.kind))
    el(out, "t:ItemId", Id=item.id, ChangeKey=item.changekey)
    if item.attachments:
        holder = el(out, "t:Attachments")
        for attachment in item.attachments:
            el(el(holder, f"t:{attachment.kind}"), "t:AttachmentId", Id=attachment.id)
    return out


def _items_message(operation: str, items: list[Item]) -> etree._Element:
    msg = ok(operation)
    container = el(msg, "m:Items")
    for item in items:
        container.append(_id_only(item))
    return msg


# ---- sending -----------------------------------------------------------------------------------
def _deliver(ctx: Context, item: Item) -> None:
    """Put a copy of a sent message in the inbox of every recipient the simulator hosts."""
    for name in ("From", "Sender"):
        if name not in item.fields:
            sender = el(None, f"t:{name}")
            mbx = el(sender, "t:Mailbox")
            el(mbx, "t:Name", ctx.acting.display_name)
            el(mbx, "t:EmailAddress", ctx.acting.address)
            el(mbx, "t:RoutingType", "SMTP")
            item.fields[name] = sender
    recipients: list[str] = []
    for name in ("ToRecipients", "CcRecipients", "BccRecipients"):
        recipients += [a.lower() for a in mailbox_addresses(item.fields.get(name))]
    for address in dict.fromkeys(recipients):
        inbox = ctx.store.distinguished(address, "inbox")
        if inbox is None:
            continue  # an outside address: the message leaves the simulated organisation
        fields = {k: copy.deepcopy(v) for k, v in item.fields.items() if k != "BccRecipients"}
        ctx.store.add_item(
            Item(
                id="",
                mailbox=address,
                folder_id=inbox.id,
                kind="Message",
                fields=fields,
                ext=copy.deepcopy(item.ext),
                is_read=False,
                attachments=copy_attachments(item.attachments),
                mime=item.mime,
            )
        )


def _message_id(ctx: Context, item: Item) -> None:
    """Exchange gives every message it sends an Internet Message-ID: the sender's copy and each
    recipient's share it (and the MIME says it)."""
    if item.text("InternetMessageId"):
        return
    domain = ctx.acting.address.rpartition("@")[2] or "ewsim.local"
    message_id = f"<{uuid.uuid4().hex}@{domain}>"
    item.fields["InternetMessageId"] = el(None, "t:InternetMessageId", message_id)
    if item.mime:
        item.mime = f"Message-ID: {message_id}\r\n".encode() + item.mime


def _send(ctx: Context, item: Item, save_copy: bool, saved_folder_holder: etree._Element | None) -> None:
    """Deliver a message that is in no folder (new, or just taken out of Drafts), keeping a copy if asked."""
    _message_id(ctx, item)
    _deliver(ctx, item)
    if save_copy:
        item.folder_id = target_folder(ctx, saved_folder_holder, "sentitems").id
        item.is_read = True
        ctx.store.add_item(item)


# ---- CreateItem / GetItem ----------------------------------------------------------------------
def create_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    disposition = op.get("MessageDisposition", "SaveOnly")
    holder = child(op, "SavedItemFolderId")

    def handle(spec: etree._Element) -> etree._Element:
        item = item_from_xml(spec, ctx.acting.address, "")
        if item.kind == "Message" and disposition in SEND_DISPOSITIONS:
            _send(ctx, item, disposition == "SendAndSaveCopy", holder)
            return _items_message("CreateItem", [])
        item.folder_id = target_folder(ctx, holder, DEFAULT_FOLDER[item.kind]).id
        ctx.store.add_item(item)
        return _items_message("CreateItem", [item])

    return per_element("CreateItem", children(child(op, "Items")), handle)


def get_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    shape = Shape.parse(child(op, "ItemShape"))

    def handle(id_elem: etree._Element) -> etree._Element:
        item = resolve_item(ctx, id_elem)
        parent = ctx.store.folders[item.folder_id]
        msg = ok("GetItem")
        el(msg, "m:Items").append(render_item(item, shape, parent.changekey, item.mailbox))
        return msg

    return per_element("GetItem", item_id_elements(child(op, "ItemIds")), handle)


# ---- UpdateItem --------------------------------------------------------------------------------
def _value_property(update: etree._Element) -> etree._Element:
    for holder in children(update):
        if local(holder.tag) in ITEM_KINDS:
            props = children(holder)
            if len(props) != 1:
                raise EwsError("ErrorIncorrectUpdatePropertyCount", "Each change must hold exactly one property.")
            return props[0]
    raise EwsError("ErrorSchemaValidation", f"{local(update.tag)} without an item element")


def _merge_indexed(item: Item, container_name: str, new: etree._Element, sub: str | None) -> None:
    stored = item.fields.setdefault(container_name, etree.Element(t(container_name)))
    truncate_leaves(new)
    for entry in children(new):
        key = entry.get("Key")
        existing = next((e for e in children(stored) if e.get("Key") == key), None)
        if existing is None:
            stored.append(copy.deepcopy(entry))
        elif sub is None:
            stored.replace(existing, copy.deepcopy(entry))
        else:
            for part in children(entry):  # a sub-field, e.g. the Street of one PhysicalAddress
                old = child(existing, local(part.tag))
                if old is not None:
                    existing.remove(old)
                existing.append(copy.deepcopy(part))


def _delete_field(item: Item, update: etree._Element) -> None:
    path = parse_path(find_path(update))
    if path.is_ext:
        item.ext.pop(path.name[4:], None)
    elif path.name == "IsRead":
        item.is_read = False
    elif path.index is not None:
        stored = item.fields.get(path.name)
        for entry in children(stored):
            if entry.get("Key") != path.index:
                continue
            sub = child(entry, path.sub) if path.sub else None
            if sub is not None:
                entry.remove(sub)
            if path.sub is None or not children(entry):
                stored.remove(entry)  # the whole entry, or one with nothing left in it: Exchange drops it
        if stored is not None and not children(stored):
            del item.fields[path.name]
    else:
        item.fields.pop(path.name, None)


def apply_update(item: Item, update: etree._Element) -> str:
    """Apply one SetItemField/AppendToItemField/DeleteItemField; returns the field name it touched."""
    kind = local(update.tag)
    path = parse_path(find_path(update))
    if kind == "DeleteItemField":
        _delete_field(item, update)
        return path.name
    prop = _value_property(update)
    if kind == "SetItemField":
        if path.index is not None and local(prop.tag) in INDEXED_CONTAINERS.values():
            _merge_indexed(item, local(prop.tag), prop, path.sub)
        else:
            apply_property(item, prop)
    elif kind == "AppendToItemField":
        stored = item.fields.get(local(prop.tag))
        if stored is None:
            apply_property(item, prop)
        elif children(prop):
            stored.extend(copy.deepcopy(c) for c in children(prop))
        else:
            stored.text = (stored.text or "") + (prop.text or "")
            normalize(stored)
    else:
        raise EwsError("ErrorSchemaValidation", f"Unknown update {kind!r}")
    return path.name


def update_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    resolution = op.get("ConflictResolution", "AutoResolve")
    disposition = op.get("MessageDisposition", "SaveOnly")
    holder = child(op, "SavedItemFolderId")

    def handle(change: etree._Element) -> etree._Element:
        id_elem = item_id_elements(change)
        if not id_elem:
            raise EwsError("ErrorSchemaValidation", "ItemChange without ItemId")
        item = resolve_item(ctx, id_elem[0])
        sent_key = id_elem[0].get("ChangeKey")
        if sent_key and sent_key != item.changekey and resolution == "NeverOverwrite":
            raise EwsError(
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed "
                "in the request does not match the current change key for the item.",
            )
        touched = {apply_update(item, u) for u in children(child(change, "Updates"))}
        if {n for n in touched if not n.startswith("ext:")} - KEEPS_MIME:
            item.mime = b""  # the content changed: MimeContent is built from the properties again
        finish_item(item)
        if item.kind == "Message" and disposition in SEND_DISPOSITIONS:
            # A draft sent by UpdateItem leaves its folder; Exchange answers without an item.
            ctx.store.remove_item(item)
            item.id = ""
            _send(ctx, item, disposition == "SendAndSaveCopy", holder)
            msg = _items_message("UpdateItem", [])
            el(el(msg, "m:ConflictResults"), "t:Count", "0")
            return msg
        if touched:
            ctx.store.touch_item(item, read_flag_only=touched == {"IsRead"})
        msg = _items_message("UpdateItem", [item])
        el(el(msg, "m:ConflictResults"), "t:Count", "0")
        return msg

    return per_element("UpdateItem", children(child(op, "ItemChanges")), handle)


# ---- DeleteItem / MoveItem / CopyItem / SendItem -------------------------------------------------
def delete_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    delete_type = op.get("DeleteType", "HardDelete")

    def handle(id_elem: etree._Element) -> etree._Element:
        item = resolve_item(ctx, id_elem)
        trash = ctx.store.distinguished(item.mailbox, "deleteditems")
        dumpster = ctx.store.distinguished(item.mailbox, "recoverableitemsdeletions")
        assert trash is not None and dumpster is not None
        if delete_type == "MoveToDeletedItems" and item.folder_id != trash.id:
            ctx.store.move_item(item, trash.id)
        elif delete_type in ("SoftDelete", "MoveToDeletedItems") and item.folder_id != dumpster.id:
            # As in Exchange: soft deletes (and trashing what is already in the trash) go to the dumpster.
            ctx.store.move_item(item, dumpster.id)
        else:
            ctx.store.remove_item(item)
        return ok("DeleteItem")

    return per_element("DeleteItem", item_id_elements(child(op, "ItemIds")), handle)


def move_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    dest = target_folder(ctx, child(op, "ToFolderId"), "inbox")

    def handle(id_elem: etree._Element) -> etree._Element:
        item = resolve_item(ctx, id_elem)
        if item.folder_id != dest.id:
            ctx.store.move_item(item, dest.id)
        return _items_message("MoveItem", [item])

    return per_element("MoveItem", item_id_elements(child(op, "ItemIds")), handle)


def copy_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    dest = target_folder(ctx, child(op, "ToFolderId"), "inbox")

    def handle(id_elem: etree._Element) -> etree._Element:
        item = resolve_item(ctx, id_elem)
        clone = Item(
            id="",
            mailbox=item.mailbox,
            folder_id=dest.id,
            kind=item.kind,
            fields=copy.deepcopy(item.fields),
            ext=copy.deepcopy(item.ext),
            is_read=item.is_read,
            attachments=copy_attachments(item.attachments),
            mime=item.mime,
        )
        ctx.store.add_item(clone)
        return _items_message("CopyItem", [clone])

    return per_element("CopyItem", item_id_elements(child(op, "ItemIds")), handle)


def send_item(ctx: Context, op: etree._Element) -> list[etree._Element]:
    save_copy = op.get("SaveItemToFolder", "true").lower() == "true"
    holder = child(op, "SavedItemFolderId")

    def handle(id_elem: etree._Element) -> etree._Element:
        item = resolve_item(ctx, id_elem)
        if item.kind != "Message":
            raise EwsError("ErrorInvalidItemForOperationSendItem", "Only messages can be sent.")
        ctx.store.remove_item(item)
        item.id = ""
        _send(ctx, item, save_copy, holder)
        return ok("SendItem")

    return per_element("SendItem", item_id_elements(child(op, "ItemIds")), handle)
