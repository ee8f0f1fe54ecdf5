"""Attachment operations: CreateAttachment, GetAttachment, DeleteAttachment."""

from __future__ import annotations

from lxml import etree

from ..faults import access_denied, item_not_found
from ..items import Shape, parse_attachment, render_attachment
from ..model import Attachment, Item
from ..soap import child, child_text, children, el, local
from .common import Context, checked_id, ok, per_element, resolve_item


def _find(ctx: Context, id_elem: etree._Element) -> tuple[Item, Item, Attachment]:
    found = ctx.store.find_attachment(checked_id(id_elem))
    if found is None:
        raise item_not_found()
    if found[0].mailbox != ctx.acting.address:
        raise access_denied()
    return found


def _attachment_ids(op: etree._Element) -> list[etree._Element]:
    return [c for c in children(child(op, "AttachmentIds")) if local(c.tag) == "AttachmentId"]


def create_attachment(ctx: Context, op: etree._Element) -> list[etree._Element]:
    parent_elem = child(op, "ParentItemId")

    def handle(spec: etree._Element) -> etree._Element:
        if parent_elem is None:
            raise item_not_found()
        parent = resolve_item(ctx, parent_elem)
        attachment = parse_attachment(spec)
        parent.attachments.append(attachment)
        ctx.store.touch_item(parent)
        msg = ok("CreateAttachment")
        out = el(el(msg, "m:Attachments"), f"t:{attachment.kind}")
        el(out, "t:AttachmentId", Id=attachment.id, RootItemId=parent.id, RootItemChangeKey=parent.changekey)
        return msg

    return per_element("CreateAttachment", children(child(op, "Attachments")), handle)


def get_attachment(ctx: Context, op: etree._Element) -> list[etree._Element]:
    shape_elem = child(op, "AttachmentShape")
    shape = Shape.parse(shape_elem)
    shape.base = "Default"  # an embedded item comes with its properties; MimeContent only when asked for
    if (child_text(shape_elem, "IncludeMimeContent") or "").strip().lower() in ("true", "1"):
        shape.fields.add("MimeContent")
    else:
        shape.fields.discard("MimeContent")

    def handle(id_elem: etree._Element) -> etree._Element:
        _, _, attachment = _find(ctx, id_elem)
        msg = ok("GetAttachment")
        el(msg, "m:Attachments").append(render_attachment(attachment, full=True, shape=shape))
        return msg

    return per_element("GetAttachment", _attachment_ids(op), handle)


def delete_attachment(ctx: Context, op: etree._Element) -> list[etree._Element]:
    def handle(id_elem: etree._Element) -> etree._Element:
        root, holder, attachment = _find(ctx, id_elem)
        holder.attachments.remove(attachment)
        ctx.store.attachment_roots.pop(attachment.id, None)
        ctx.store.touch_item(root)
        msg = ok("DeleteAttachment")
        el(msg, "m:RootItemId", RootItemId=root.id, RootItemChangeKey=root.changekey)
        return msg

    return per_element("DeleteAttachment", _attachment_ids(op), handle)
