"""RFC 822 messages: parsing MIME into a Message item (CreateItem MimeContent, the control interface) and
building MIME from an item (the MimeContent property), plus HTML -> plain text for TextBody."""

from __future__ import annotations

import base64
import email
import hashlib
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import lxml.html
from lxml import etree

from .model import Attachment, Item, new_id
from .soap import children, el, local, t

# Header -> property holding mailboxes, and whether the property is a single mailbox.
ADDRESS_HEADERS = (
    ("From", "From", True),
    ("Sender", "Sender", True),
    ("To", "ToRecipients", False),
    ("Cc", "CcRecipients", False),
    ("Bcc", "BccRecipients", False),
    ("Reply-To", "ReplyTo", False),
)
TEXT_HEADERS = (("Subject", "Subject"), ("Message-ID", "InternetMessageId"), ("In-Reply-To", "InReplyTo"))
_BLOCKS = ("p", "div", "li", "tr", "table", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6")


def mailbox_addresses(elem: etree._Element | None) -> list[str]:
    """EmailAddress texts of every Mailbox under a property (From, ToRecipients, attendees...)."""
    if elem is None:
        return []
    return [(a.text or "").strip() for a in elem.iter(t("EmailAddress")) if (a.text or "").strip()]


def _mailbox_list(tag: str, addresses: tuple[Address, ...], single: bool) -> etree._Element:
    outer = el(None, f"t:{tag}")
    for address in addresses[:1] if single else addresses:
        mbx = el(outer, "t:Mailbox")
        el(mbx, "t:Name", address.display_name or address.addr_spec)
        el(mbx, "t:EmailAddress", address.addr_spec)
        el(mbx, "t:RoutingType", "SMTP")
    return outer


# ---- parsing ------------------------------------------------------------------------------------
def parse_message(raw: bytes) -> Item:
    """A Message item (no id or folder yet) holding what the RFC 822 message says, attachments included."""
    return _item_from(email.message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]


def _item_from(msg: EmailMessage) -> Item:
    item = Item(id="", mailbox="", folder_id="", kind="Message")
    for header, name in TEXT_HEADERS:
        if msg[header] is not None:
            item.fields[name] = el(None, f"t:{name}", str(msg[header]).strip())
    if msg["Thread-Index"] is not None:  # Exchange keeps it as the message's conversation index
        item.fields["ConversationIndex"] = el(None, "t:ConversationIndex", "".join(str(msg["Thread-Index"]).split()))
    if msg["References"] is not None:
        item.fields["References"] = el(None, "t:References", " ".join(str(msg["References"]).split()))
    for header, name, single in ADDRESS_HEADERS:
        addresses = getattr(msg[header], "addresses", ())
        if addresses:
            item.fields[name] = _mailbox_list(name, addresses, single)
    if "From" in item.fields and "Sender" not in item.fields:
        item.fields["Sender"] = _mailbox_list("Sender", msg["From"].addresses, True)
    date = getattr(msg["Date"], "datetime", None)
    if date is not None:
        stamp = (date if date.tzinfo else date.replace(tzinfo=UTC)).astimezone(UTC)
        item.fields["DateTimeSent"] = el(None, "t:DateTimeSent", stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
    body = msg.get_body(preferencelist=("html", "plain"))
    if body is not None:
        kind = "HTML" if body.get_content_subtype() == "html" else "Text"
        item.fields["Body"] = el(None, "t:Body", _text_content(body), BodyType=kind)
    for part in msg.iter_attachments():
        item.attachments.append(_attachment_from(part))  # type: ignore[arg-type]
    return item


def _text_content(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset: decode leniently
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")


def _attachment_from(part: EmailMessage) -> Attachment:
    content_id = (part["Content-ID"] or "").strip().strip("<>") or None
    common = {
        "id": new_id(),
        "content_type": part.get_content_type(),
        "content_id": content_id,
        "is_inline": part.get_content_disposition() == "inline",
    }
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()[0]
        embedded = _item_from(inner)
        name = part.get_filename() or embedded.text("Subject") or "message"
        return Attachment(kind="ItemAttachment", name=name, item=embedded, **common)
    content = part.get_payload(decode=True) or b""
    return Attachment(kind="FileAttachment", name=part.get_filename() or "", content=content, **common)


# ---- conversations ---------------------------------------------------------------------------------
def conversation_index(item: Item) -> bytes:
    """The message's conversation index: its Thread-Index header if it came with one; else a 22-byte
    header named after the first message of the thread (the first of References, else In-Reply-To,
    else its own Message-ID) and a 5-byte block per reply, so every copy of a thread agrees."""
    given = item.text("ConversationIndex")
    if given:
        try:
            raw = base64.b64decode(given, validate=True)
        except (ValueError, TypeError):
            raw = b""
        if len(raw) >= 22:
            return raw
    references = (item.text("References") or "").split()
    in_reply_to = (item.text("InReplyTo") or "").strip()
    root = references[0] if references else in_reply_to or item.text("InternetMessageId") or item.id
    depth = len(references) or (1 if in_reply_to else 0)
    header = b"\x01" + hashlib.sha256(root.encode()).digest()[:21]
    own = (item.text("InternetMessageId") or item.id).encode()
    return header + b"".join(hashlib.sha256(own + bytes([i])).digest()[:5] for i in range(depth))


def conversation_id(index: bytes) -> str:
    """The ConversationId of a thread: the same for every message whose index starts alike."""
    return base64.b64encode(b"\x00\x00\x00\x00\x01\x10" + hashlib.sha256(index[:22]).digest()[:16]).decode()


# ---- building -----------------------------------------------------------------------------------
def build_mime(item: Item, owner: str) -> bytes:
    """The item as an RFC 822 message (body and attachments)."""
    return _message_for(item, owner).as_bytes(policy=policy.SMTP)


def _message_for(item: Item, owner: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = item.text("Subject") or ""
    senders = _named(item.fields.get("From")) or ([("", owner)] if owner else [])
    if senders:
        msg["From"] = formataddr(senders[0])
    for name, header in (("ToRecipients", "To"), ("CcRecipients", "Cc")):
        named = _named(item.fields.get(name))
        if named:
            msg[header] = ", ".join(formataddr(n) for n in named)
    msg["Date"] = format_datetime(_sent_time(item))
    message_id = item.text("InternetMessageId")
    if message_id or item.id:
        msg["Message-ID"] = message_id or f"<{hashlib.sha1(item.id.encode()).hexdigest()[:24]}@ewsim.local>"
    for name, header in (("InReplyTo", "In-Reply-To"), ("References", "References")):
        if item.text(name):
            msg[header] = item.text(name)
    body = item.fields.get("Body")
    subtype = "html" if body is not None and body.get("BodyType") == "HTML" else "plain"
    msg.set_content(item.text("Body") or "", subtype=subtype)
    for attachment in item.attachments:
        if attachment.item is not None:
            msg.add_attachment(_message_for(attachment.item, ""), filename=attachment.name or None)
            continue
        maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.name or None,
            cid=f"<{attachment.content_id}>" if attachment.content_id else None,
            disposition="inline" if attachment.is_inline else "attachment",
        )
    return msg


def _sent_time(item: Item) -> datetime:
    text = item.text("DateTimeSent")
    try:
        return datetime.fromisoformat((text or "").replace("Z", "+00:00"))
    except ValueError:
        return item.created


def _named(elem: etree._Element | None) -> list[tuple[str, str]]:
    """(display name, address) of every Mailbox under a property."""
    found = []
    for mbx in elem.iter(t("Mailbox")) if elem is not None else ():
        parts = {local(c.tag): (c.text or "").strip() for c in children(mbx)}
        address = parts.get("EmailAddress")
        if address:
            found.append(("" if parts.get("Name") == address else parts.get("Name", ""), address))
    return found


# ---- HTML -> text ---------------------------------------------------------------------------------
def html_to_text(html: str) -> str:
    """Plain text of an HTML body: tags stripped, entities decoded, block elements and <br> as line breaks."""
    if not html.strip():
        return ""
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):  # nothing but comments or processing instructions
        return ""
    for junk in doc.xpath("//script|//style|//head"):
        junk.drop_tree()
    for node in doc.iter("br", *_BLOCKS):
        node.tail = "\n" + (node.tail or "")
        if node.tag != "br":
            node.text = "\n" + (node.text or "")
    lines = [" ".join(line.split()) for line in doc.text_content().splitlines()]
    text = "\n".join(lines).strip("\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text
