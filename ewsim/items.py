"""Item XML: parsing what clients send, field-path addressing, and rendering items for responses.

Items keep each property element as the client sent it (keyed by element name), after the rules
Exchange applies on save (text limits, UTC times, all-day spans, recurrence dates, MimeContent parsed
into properties); the server computes the read-only properties (ids, times, size, MIME, TextBody ...).
"""

from __future__ import annotations

import base64
import binascii
import copy
import mimetypes
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from lxml import etree

from .faults import EwsError
from .mime import build_mime, conversation_id, conversation_index, html_to_text, mailbox_addresses, parse_message
from .model import ITEM_CLASS_DEFAULT, ITEM_KINDS, Attachment, ExtProp, Item, new_id
from .soap import child, child_text, children, el, local, t
from .winzones import zone

_BASE = (
    "MimeContent ItemId ParentFolderId ItemClass Subject Sensitivity Body Attachments DateTimeReceived Size "
    "Categories Importance InReplyTo IsSubmitted IsDraft IsFromMe IsResend IsUnmodified InternetMessageHeaders "
    "DateTimeSent DateTimeCreated ResponseObjects ReminderDueBy ReminderIsSet ReminderMinutesBeforeStart "
    "DisplayCc DisplayTo HasAttachments ExtendedProperty Culture EffectiveRights LastModifiedName "
    "LastModifiedTime IsAssociated WebClientReadFormQueryString WebClientEditFormQueryString ConversationId "
    "UniqueBody TextBody"
).split()
_KIND_FIELDS = {
    "Message": "Sender ToRecipients CcRecipients BccRecipients IsReadReceiptRequested IsDeliveryReceiptRequested "
    "ConversationIndex ConversationTopic From InternetMessageId IsRead IsResponseRequested References "
    "ReplyTo ReceivedBy ReceivedRepresenting ReminderMessageData",
    "CalendarItem": "UID RecurrenceId DateTimeStamp Start End OriginalStart IsAllDayEvent LegacyFreeBusyStatus "
    "Location When IsMeeting IsCancelled IsRecurring MeetingRequestWasSent IsResponseRequested "
    "CalendarItemType MyResponseType Organizer RequiredAttendees OptionalAttendees Resources "
    "ConflictingMeetingCount AdjacentMeetingCount ConflictingMeetings AdjacentMeetings Duration "
    "TimeZone AppointmentReplyTime AppointmentSequenceNumber AppointmentState Recurrence "
    "FirstOccurrence LastOccurrence ModifiedOccurrences DeletedOccurrences MeetingTimeZone "
    "StartTimeZone EndTimeZone ConferenceType AllowNewTimeProposal IsOnlineMeeting "
    "MeetingWorkspaceUrl NetShowUrl",
    "Contact": "FileAs FileAsMapping DisplayName GivenName Initials MiddleName Nickname CompleteName CompanyName "
    "EmailAddresses PhysicalAddresses PhoneNumbers AssistantName Birthday BusinessHomePage Children "
    "Companies ContactSource Department Generation ImAddresses JobTitle Manager Mileage OfficeLocation "
    "PostalAddressIndex Profession SpouseName Surname WeddingAnniversary HasPicture PhoneticFullName "
    "PhoneticFirstName PhoneticLastName Alias Notes Photo UserSMIMECertificate MSExchangeCertificate "
    "DirectoryId ManagerMailbox DirectReports",
    "Task": "ActualWork AssignedTime BillingInformation ChangeCount Companies CompleteDate Contacts DelegationState "
    "Delegator DueDate IsAssignmentEditable IsComplete IsRecurring IsTeamTask Mileage Owner PercentComplete "
    "Recurrence StartDate Status StatusDescription TotalWork",
}
FIELD_ORDER = {
    kind: {name: i for i, name in enumerate(_BASE + _KIND_FIELDS.get(kind, "").split())} for kind in ITEM_KINDS
}
# Indexed field URIs name one entry; the entries live in a container element.
INDEXED_CONTAINERS = {
    "EmailAddress": "EmailAddresses",
    "PhysicalAddress": "PhysicalAddresses",
    "PhoneNumber": "PhoneNumbers",
    "ImAddress": "ImAddresses",
}
# Properties the server owns; values sent by clients for these are ignored.
COMPUTED = {
    "ItemId",
    "ParentFolderId",
    "DateTimeCreated",
    "DateTimeReceived",
    "LastModifiedTime",
    "Size",
    "HasAttachments",
    "IsRead",
    "EffectiveRights",
    "ConversationId",
    "IsDraft",
    "DisplayTo",
    "DisplayCc",
    "CalendarItemType",
    "TextBody",
}
# Exchange keeps at most 255 characters of these text properties (and of indexed entries) and drops the rest.
TEXT_LIMIT = 255
LIMITED = set(
    (
        "Subject Location DisplayName GivenName MiddleName Surname Nickname Initials Generation CompanyName "
        "JobTitle Department OfficeLocation AssistantName Manager Profession SpouseName FileAs Mileage "
        "BillingInformation"
    ).split()
)
LIMITED_LISTS = {"EmailAddresses", "PhoneNumbers", "ImAddresses", "PhysicalAddresses", "Categories", "Companies"}


DATETIME_FIELDS = {
    "Start",
    "End",
    "OriginalStart",
    "DueDate",
    "StartDate",
    "CompleteDate",
    "ReminderDueBy",
    "AppointmentReplyTime",
    "DateTimeSent",
    "Birthday",
    "WeddingAnniversary",
    "AssignedTime",
}
BOOL_PREFIXES = ("Is", "Allow", "Has")
BOOL_FIELDS = {"ReminderIsSet", "MeetingRequestWasSent"}


def utc_text(text: str) -> str:
    """Exchange stores times in UTC and answers with "Z" times; keep unparseable text as sent."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return text
    if parsed.tzinfo is None:
        return text
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bool_text(text: str) -> str:
    """Clients may send xs:boolean as 1/0; Exchange answers true/false (and exchangelib only parses those)."""
    value = text.strip().lower()
    return {"1": "true", "0": "false"}.get(value, value)


def normalize(prop: etree._Element) -> etree._Element:
    name = local(prop.tag)
    if len(prop) == 0 and prop.text:
        if name in DATETIME_FIELDS:
            prop.text = utc_text(prop.text)
        elif name in BOOL_FIELDS or name.startswith(BOOL_PREFIXES):
            prop.text = bool_text(prop.text)
        elif name in LIMITED:
            prop.text = prop.text[:TEXT_LIMIT]
    elif name in LIMITED_LISTS:
        truncate_leaves(prop)
    return prop


def truncate_leaves(elem: etree._Element) -> None:
    """Cut the text of every leaf below elem (indexed entries, their sub-fields, list values) to the limit."""
    for leaf in elem.iter():
        if isinstance(leaf.tag, str) and len(leaf) == 0 and leaf.text:
            leaf.text = leaf.text[:TEXT_LIMIT]


def normalize_ext_value(prop_type: str, value: str) -> str:
    base = prop_type[:-5] if prop_type.endswith("Array") else prop_type
    if base == "Boolean":
        return bool_text(value)
    if base == "SystemTime":
        return utc_text(value)
    return value


def xs_bool(text: str | None) -> bool:
    """xs:boolean allows "true"/"false" and "1"/"0"."""
    return (text or "").strip().lower() in ("true", "1")


def iso(dt: object) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[attr-defined]


# ---- field paths --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldPath:
    """A parsed FieldURI / IndexedFieldURI / ExtendedFieldURI."""

    name: str  # storage key: element name, or "ext:<key>" for extended properties
    index: str | None = None  # FieldIndex of an indexed field (entry Key)
    sub: str | None = None  # sub-field of an indexed entry, e.g. "Street" of a PhysicalAddress
    ext_attrs: tuple[tuple[str, str], ...] = ()

    @property
    def is_ext(self) -> bool:
        return self.name.startswith("ext:")


def ext_key(attrs: dict[str, str]) -> str:
    """A canonical key for an extended property definition, independent of attribute spelling."""

    def num(value: str | None) -> str:
        if value is None:
            return ""
        try:
            return str(int(value, 0))
        except ValueError:
            return value

    return "|".join(
        [
            (attrs.get("DistinguishedPropertySetId") or "").lower(),
            (attrs.get("PropertySetId") or "").lower(),
            num(attrs.get("PropertyTag")),
            attrs.get("PropertyName") or "",
            num(attrs.get("PropertyId")),
            attrs.get("PropertyType") or "",
        ]
    )


def parse_path(elem: etree._Element) -> FieldPath:
    kind = local(elem.tag)
    if kind == "FieldURI":
        uri = elem.get("FieldURI") or ""
        return FieldPath(uri.split(":")[-1])
    if kind == "IndexedFieldURI":
        parts = (elem.get("FieldURI") or "").split(":")
        container = INDEXED_CONTAINERS.get(parts[1] if len(parts) > 1 else "", parts[-1])
        return FieldPath(container, elem.get("FieldIndex"), parts[2] if len(parts) > 2 else None)
    if kind == "ExtendedFieldURI":
        attrs = dict(elem.attrib)
        return FieldPath("ext:" + ext_key(attrs), ext_attrs=tuple(sorted(attrs.items())))
    raise EwsError("ErrorInvalidPropertyRequest", f"Unsupported property path element {kind!r}")


def find_path(parent: etree._Element) -> etree._Element | None:
    for c in children(parent):
        if local(c.tag) in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI"):
            return c
    return None


# ---- parsing client items ------------------------------------------------------------------------
def parse_ext(elem: etree._Element) -> tuple[str, ExtProp]:
    uri = child(elem, "ExtendedFieldURI")
    if uri is None:
        raise EwsError("ErrorSchemaValidation", "ExtendedProperty without ExtendedFieldURI")
    attrs = dict(uri.attrib)
    kind = attrs.get("PropertyType", "String")
    values_elem = child(elem, "Values")
    if values_elem is not None:
        values = [normalize_ext_value(kind, v.text or "") for v in children(values_elem)]
        return ext_key(attrs), ExtProp(attrs, values, True)
    value = child(elem, "Value")
    return ext_key(attrs), ExtProp(attrs, [normalize_ext_value(kind, value.text or "" if value is not None else "")])


def apply_property(item: Item, prop: etree._Element) -> None:
    """Store one property element sent by a client on an item."""
    name = local(prop.tag)
    if name == "ExtendedProperty":
        key, ext = parse_ext(prop)
        item.ext[key] = ext
    elif name == "IsRead":
        item.is_read = xs_bool(prop.text)
    elif name == "MimeContent":
        _apply_mime(item, prop)
    elif name == "Attachments":
        item.attachments.extend(parse_attachment(a) for a in children(prop))
    elif name not in COMPUTED:
        item.fields[name] = normalize(copy.deepcopy(prop))


def _apply_mime(item: Item, prop: etree._Element) -> None:
    """MimeContent is parsed into the item's properties and attachments, as Exchange does."""
    try:
        raw = base64.b64decode("".join((prop.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise EwsError("ErrorMimeContentInvalidBase64String", "MimeContent is not valid base64.") from None
    parsed = parse_message(raw)
    for parsed_prop in parsed.fields.values():
        apply_property(item, parsed_prop)
    item.attachments.extend(parsed.attachments)
    item.mime = raw


def item_from_xml(elem: etree._Element, mailbox: str, folder_id: str) -> Item:
    kind = local(elem.tag)
    if kind not in ITEM_KINDS:
        raise EwsError(
            "ErrorInvalidItemForOperationCreateItem" if kind else "ErrorSchemaValidation",
            f"Unsupported item type {kind!r}",
        )
    item = Item(id="", mailbox=mailbox, folder_id=folder_id, kind=kind)
    for prop in children(elem):
        apply_property(item, prop)
    finish_item(item)
    return item


def message_from_mime(raw: bytes, mailbox: str, folder_id: str, is_read: bool = False) -> Item:
    """A Message made from RFC 822 text exactly as CreateItem with MimeContent makes it."""
    spec = el(None, "t:Message")
    el(spec, "t:MimeContent", base64.b64encode(raw).decode())
    el(spec, "t:IsRead", "true" if is_read else "false")
    return item_from_xml(spec, mailbox, folder_id)


# ---- server-side rules -----------------------------------------------------------------------------
def finish_item(item: Item) -> None:
    """Rules Exchange applies whenever an item is saved: all-day events span whole days in their time zone,
    and recurrence start/end dates carry that time zone's offset."""
    if item.kind == "CalendarItem" and xs_bool(item.text("IsAllDayEvent")):
        _whole_days(item)
    recurrence = item.fields.get("Recurrence")
    if recurrence is not None:
        tz = zone(_tz_id(item, "StartTimeZone"))
        for node in recurrence.iter(t("StartDate"), t("EndDate")):
            node.text = _zoned_date(node.text or "", tz)


def _tz_id(item: Item, name: str) -> str | None:
    elem = item.fields.get(name)
    return None if elem is None else elem.get("Id") or elem.get("Name")


def _parse_utc(text: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat((text or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _whole_days(item: Item) -> None:
    """Move Start back and End forward to midnight in the item's start/end time zone (UTC if none)."""
    start, end = _parse_utc(item.text("Start")), _parse_utc(item.text("End"))
    if start is None or end is None:
        return
    start_tz = zone(_tz_id(item, "StartTimeZone"))
    end_tz = zone(_tz_id(item, "EndTimeZone") or _tz_id(item, "StartTimeZone"))
    local_start, local_end = start.astimezone(start_tz), end.astimezone(end_tz)
    first = datetime.combine(local_start.date(), time(), start_tz)
    last_day = local_end.date() + (timedelta(days=1) if local_end.time() != time() else timedelta())
    last = datetime.combine(max(last_day, local_start.date() + timedelta(days=1)), time(), end_tz)
    item.fields["Start"].text = iso(first.astimezone(UTC))
    item.fields["End"].text = iso(last.astimezone(UTC))


def _zoned_date(text: str, tz: object) -> str:
    """A bare date as Exchange answers it: with the time zone's offset ("2024-06-01Z", "2024-06-01+02:00")."""
    try:
        day = datetime.strptime(text.strip()[:10], "%Y-%m-%d")
    except ValueError:
        return text
    offset = day.replace(tzinfo=tz).utcoffset() or timedelta()  # type: ignore[arg-type]
    if not offset:
        return f"{day:%Y-%m-%d}Z"
    sign, minutes = ("-", -offset) if offset < timedelta() else ("+", offset)
    hours, rest = divmod(int(minutes.total_seconds()) // 60, 60)
    return f"{day:%Y-%m-%d}{sign}{hours:02d}:{rest:02d}"


def calendar_item_type(item: Item) -> str:
    return "RecurringMaster" if "Recurrence" in item.fields else "Single"


# ---- attachments -------------------------------------------------------------------------------------
def parse_attachment(elem: etree._Element) -> Attachment:
    """A FileAttachment/ItemAttachment element sent by a client (CreateItem Attachments, CreateAttachment)."""
    kind = local(elem.tag)
    if kind not in ("FileAttachment", "ItemAttachment"):
        raise EwsError("ErrorSchemaValidation", f"Unsupported attachment type {kind!r}")
    name = child_text(elem, "Name") or ""
    attachment = Attachment(
        id=new_id(),
        kind=kind,
        name=name,
        content_type=child_text(elem, "ContentType") or None,
        content_id=child_text(elem, "ContentId") or None,
        content_location=child_text(elem, "ContentLocation") or None,
        is_inline=xs_bool(child_text(elem, "IsInline")),
        is_contact_photo=xs_bool(child_text(elem, "IsContactPhoto")),
    )
    if kind == "FileAttachment":
        try:
            attachment.content = base64.b64decode("".join((child_text(elem, "Content") or "").split()), validate=True)
        except (binascii.Error, ValueError):
            raise EwsError("ErrorSchemaValidation", "Attachment Content is not valid base64.") from None
        attachment.content_type = attachment.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    else:
        embedded = next((c for c in children(elem) if local(c.tag) in ITEM_KINDS), None)
        if embedded is None:
            raise EwsError("ErrorMissingItemForCreateItemAttachment", "An ItemAttachment needs an item.")
        attachment.item = item_from_xml(embedded, "", "")
    return attachment


def attachment_size(attachment: Attachment) -> int:
    return len(attachment.content) if attachment.item is None else item_size(attachment.item)


def item_size(item: Item) -> int:
    return sum(len(etree.tostring(f)) for f in item.fields.values()) + sum(map(attachment_size, item.attachments))


def render_attachment(
    attachment: Attachment, full: bool = False, shape: Shape | None = None, root: Item | None = None
) -> etree._Element:
    """An attachment's metadata (GetItem), with its content or embedded item when full (GetAttachment)."""
    out = etree.Element(t(attachment.kind))
    ids = {"RootItemId": root.id, "RootItemChangeKey": root.changekey} if root is not None else {}
    el(out, "t:AttachmentId", Id=attachment.id, **ids)
    el(out, "t:Name", attachment.name)
    if attachment.content_type:
        el(out, "t:ContentType", attachment.content_type)
    if attachment.content_id:
        el(out, "t:ContentId", attachment.content_id)
    if attachment.content_location:
        el(out, "t:ContentLocation", attachment.content_location)
    el(out, "t:Size", str(attachment_size(attachment)))
    el(out, "t:LastModifiedTime", iso(attachment.modified))
    el(out, "t:IsInline", "true" if attachment.is_inline else "false")
    if attachment.item is None:
        el(out, "t:IsContactPhoto", "true" if attachment.is_contact_photo else "false")
        if full:
            el(out, "t:Content", base64.b64encode(attachment.content).decode())
    elif full:
        out.append(render_item(attachment.item, shape or Shape("AllProperties"), "", "", embedded=True))
    return out


# ---- rendering -----------------------------------------------------------------------------------
@dataclass
class Shape:
    base: str = "IdOnly"
    fields: set[str] = field(default_factory=set)
    ext: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, elem: etree._Element | None) -> Shape:
        shape = cls(
            base=(child(elem, "BaseShape").text or "IdOnly") if child(elem, "BaseShape") is not None else "IdOnly"
        )
        for path_elem in children(child(elem, "AdditionalProperties")):
            path = parse_path(path_elem)
            if path.is_ext:
                shape.ext.append(dict(path.ext_attrs))
            else:
                shape.fields.add(path.name)
        return shape

    def wants(self, name: str) -> bool:
        if self.base == "AllProperties":
            return True
        if self.base == "Default" and name != "MimeContent":
            return True
        return name in self.fields


def _mailbox_elem(tag: str, address: str, display: str) -> etree._Element:
    outer = el(None, tag)
    mbx = el(outer, "t:Mailbox")
    el(mbx, "t:Name", display)
    el(mbx, "t:EmailAddress", address)
    el(mbx, "t:RoutingType", "SMTP")
    return outer


def computed_properties(item: Item, shape: Shape, parent_changekey: str, owner: str) -> dict[str, etree._Element]:
    """Server-owned properties of an item the shape asks for, built fresh on every read."""
    props: dict[str, etree._Element] = {}
    if parent_changekey:  # embedded items (attachments) live in no folder
        props["ParentFolderId"] = el(None, "t:ParentFolderId", Id=item.folder_id, ChangeKey=parent_changekey)
    props["ItemClass"] = item.fields.get("ItemClass") or el(None, "t:ItemClass", ITEM_CLASS_DEFAULT[item.kind])
    props["DateTimeReceived"] = el(None, "t:DateTimeReceived", iso(item.created))
    props["DateTimeCreated"] = el(None, "t:DateTimeCreated", iso(item.created))
    props["LastModifiedTime"] = el(None, "t:LastModifiedTime", iso(item.modified))
    props["Size"] = el(None, "t:Size", str(item_size(item)))
    props["HasAttachments"] = el(None, "t:HasAttachments", "true" if item.attachments else "false")
    if item.attachments and shape.wants("Attachments"):
        props["Attachments"] = el(None, "t:Attachments")
        props["Attachments"].extend(render_attachment(a) for a in item.attachments)
    body = item.fields.get("Body")
    if body is not None and shape.wants("TextBody"):
        text = item.text("Body") or ""
        props["TextBody"] = el(None, "t:TextBody", html_to_text(text) if body.get("BodyType") == "HTML" else text)
        props["TextBody"].set("BodyType", "Text")
    if item.kind == "Message":
        props["IsRead"] = el(None, "t:IsRead", "true" if item.is_read else "false")
        props["IsDraft"] = el(None, "t:IsDraft", "false")
        props["DateTimeSent"] = el(None, "t:DateTimeSent", iso(item.created))
        props["DisplayTo"] = el(None, "t:DisplayTo", "; ".join(mailbox_addresses(item.fields.get("ToRecipients"))))
        index = conversation_index(item)
        props["ConversationIndex"] = el(None, "t:ConversationIndex", base64.b64encode(index).decode())
        props["ConversationId"] = el(None, "t:ConversationId", Id=conversation_id(index))
        if shape.wants("MimeContent"):
            raw = item.mime or build_mime(item, owner)
            mime = props["MimeContent"] = el(None, "t:MimeContent", base64.b64encode(raw).decode())
            mime.set("CharacterSet", "UTF-8")
        if "From" not in item.fields and owner:
            props["From"] = _mailbox_elem("t:From", owner, owner.split("@")[0])
    if item.kind == "CalendarItem":
        props["CalendarItemType"] = el(None, "t:CalendarItemType", calendar_item_type(item))
        if "Organizer" not in item.fields and owner:
            props["Organizer"] = _mailbox_elem("t:Organizer", owner, owner.split("@")[0])
    return props


def render_item(item: Item, shape: Shape, parent_changekey: str, owner: str, embedded: bool = False) -> etree._Element:
    """The <t:Message>/<t:CalendarItem>/... element for a response, holding what the shape asks for.
    Embedded items (the item of an ItemAttachment) have no ItemId and no folder."""
    out = etree.Element(t(item.kind))
    if not embedded:
        el(out, "t:ItemId", Id=item.id, ChangeKey=item.changekey)
        if shape.base == "IdOnly" and not shape.fields and not shape.ext:
            return out
    props: dict[str, etree._Element] = {}
    if shape.base != "IdOnly" or shape.fields - set(item.fields):
        props.update(computed_properties(item, shape, parent_changekey, owner))
    props.update(item.fields)
    chosen = [(name, elem) for name, elem in props.items() if name != "ItemId" and shape.wants(name)]
    for attrs in shape.ext:
        prop = item.ext.get(ext_key(attrs))
        if prop is not None:
            chosen.append(("ExtendedProperty", _ext_elem(prop)))
    order = FIELD_ORDER[item.kind]
    chosen.sort(key=lambda pair: order.get(pair[0], len(order)))
    for _, elem in chosen:
        out.append(copy.deepcopy(elem))
    return out


def _ext_elem(prop: ExtProp) -> etree._Element:
    elem = etree.Element(t("ExtendedProperty"))
    etree.SubElement(elem, t("ExtendedFieldURI"), prop.attrs)
    if prop.is_array:
        values = el(elem, "t:Values")
        for value in prop.values:
            el(values, "t:Value", value)
    else:
        el(elem, "t:Value", prop.values[0] if prop.values else "")
    return elem


def item_summary(item: Item) -> dict[str, object]:
    """The JSON view of an item used by the control interface."""
    summary: dict[str, object] = {
        "id": item.id,
        "changekey": item.changekey,
        "item_class": item.text("ItemClass") or ITEM_CLASS_DEFAULT[item.kind],
        "type": item.kind,
        "subject": item.text("Subject"),
        "body": item.text("Body"),
        "is_read": item.is_read,
        "categories": [c.text or "" for c in children(item.fields.get("Categories"))],
        "extended_properties": [
            {"uri": p.attrs, "value": p.values if p.is_array else (p.values or [""])[0]} for p in item.ext.values()
        ],
    }
    for name in (
        "Start",
        "End",
        "Location",
        "LegacyFreeBusyStatus",
        "DisplayName",
        "GivenName",
        "Surname",
        "CompanyName",
        "DueDate",
        "Status",
        "StartDate",
    ):
        if name in item.fields:
            summary[name[0].lower() + name[1:]] = item.text(name)
    for name in ("From", "ToRecipients", "CcRecipients", "RequiredAttendees", "OptionalAttendees", "EmailAddresses"):
        if name in item.fields:
            key = {
                "From": "from",
                "ToRecipients": "to",
                "CcRecipients": "cc",
                "RequiredAttendees": "required_attendees",
                "OptionalAttendees": "optional_attendees",
                "EmailAddresses": "email_addresses",
            }[name]
            found = mailbox_addresses(item.fields[name]) or [c.text or "" for c in children(item.fields[name])]
            summary[key] = found
    if "InternetMessageId" in item.fields:
        summary["message_id"] = item.text("InternetMessageId")
    summary["attachments"] = [
        {"id": a.id, "type": a.kind, "name": a.name, "content_type": a.content_type, "size": attachment_size(a)}
        for a in item.attachments
    ]
    return summary
