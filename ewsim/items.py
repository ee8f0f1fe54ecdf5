"""Item XML: parsing what clients send, field-path addressing, and rendering items for responses.

Items keep each property element exactly as the client sent it (keyed by element name); the server
only computes the read-only properties (ids, times, size, MIME, organizer ...).
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from lxml import etree

from .faults import EwsError
from .model import ITEM_CLASS_DEFAULT, ITEM_KINDS, ExtProp, Item
from .soap import child, children, el, local, t

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
}


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
    return prop


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
    elif name not in COMPUTED:
        item.fields[name] = normalize(copy.deepcopy(prop))


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
    return item


def mailbox_addresses(elem: etree._Element | None) -> list[str]:
    """EmailAddress texts of every Mailbox under a property (From, ToRecipients, attendees...)."""
    if elem is None:
        return []
    return [(a.text or "").strip() for a in elem.iter(t("EmailAddress")) if (a.text or "").strip()]


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


def _mime(item: Item, owner: str) -> etree._Element:
    msg = EmailMessage()
    msg["Subject"] = item.text("Subject") or ""
    senders = mailbox_addresses(item.fields.get("From")) or [owner]
    msg["From"] = formataddr(("", senders[0]))
    to = mailbox_addresses(item.fields.get("ToRecipients"))
    if to:
        msg["To"] = ", ".join(to)
    cc = mailbox_addresses(item.fields.get("CcRecipients"))
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Date"] = format_datetime(item.created)
    msg["Message-ID"] = f"<{abs(hash(item.id))}@ewsim.local>"
    body = item.fields.get("Body")
    subtype = "html" if body is not None and body.get("BodyType") == "HTML" else "plain"
    msg.set_content(item.text("Body") or "", subtype=subtype)
    mime = etree.Element(t("MimeContent"))
    mime.set("CharacterSet", "UTF-8")
    mime.text = base64.b64encode(msg.as_bytes(policy=SMTP)).decode()
    return mime


def _mailbox_elem(tag: str, address: str, display: str) -> etree._Element:
    outer = el(None, tag)
    mbx = el(outer, "t:Mailbox")
    el(mbx, "t:Name", display)
    el(mbx, "t:EmailAddress", address)
    el(mbx, "t:RoutingType", "SMTP")
    return outer


def computed_properties(item: Item, parent_changekey: str, owner: str) -> dict[str, etree._Element]:
    """Server-owned properties of an item, built fresh on every read."""
    props: dict[str, etree._Element] = {}
    props["ParentFolderId"] = el(None, "t:ParentFolderId", Id=item.folder_id, ChangeKey=parent_changekey)
    props["ItemClass"] = item.fields.get("ItemClass") or el(None, "t:ItemClass", ITEM_CLASS_DEFAULT[item.kind])
    props["DateTimeReceived"] = el(None, "t:DateTimeReceived", iso(item.created))
    props["DateTimeCreated"] = el(None, "t:DateTimeCreated", iso(item.created))
    props["LastModifiedTime"] = el(None, "t:LastModifiedTime", iso(item.modified))
    props["Size"] = el(None, "t:Size", str(sum(len(etree.tostring(f)) for f in item.fields.values())))
    props["HasAttachments"] = el(None, "t:HasAttachments", "false")
    if item.kind == "Message":
        props["IsRead"] = el(None, "t:IsRead", "true" if item.is_read else "false")
        props["IsDraft"] = el(None, "t:IsDraft", "false")
        props["DateTimeSent"] = el(None, "t:DateTimeSent", iso(item.created))
        props["DisplayTo"] = el(None, "t:DisplayTo", "; ".join(mailbox_addresses(item.fields.get("ToRecipients"))))
        props["MimeContent"] = _mime(item, owner)
        if "From" not in item.fields:
            props["From"] = _mailbox_elem("t:From", owner, owner.split("@")[0])
    if item.kind == "CalendarItem" and "Organizer" not in item.fields:
        props["Organizer"] = _mailbox_elem("t:Organizer", owner, owner.split("@")[0])
    return props


def render_item(item: Item, shape: Shape, parent_changekey: str, owner: str) -> etree._Element:
    """The <t:Message>/<t:CalendarItem>/... element for a response, holding what the shape asks for."""
    out = etree.Element(t(item.kind))
    el(out, "t:ItemId", Id=item.id, ChangeKey=item.changekey)
    if shape.base == "IdOnly" and not shape.fields and not shape.ext:
        return out
    props: dict[str, etree._Element] = {}
    if shape.base != "IdOnly" or shape.fields - set(item.fields):
        props.update(computed_properties(item, parent_changekey, owner))
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
    for name in ("From", "ToRecipients", "RequiredAttendees", "OptionalAttendees", "EmailAddresses"):
        if name in item.fields:
            key = {
                "From": "from",
                "ToRecipients": "to",
                "RequiredAttendees": "required_attendees",
                "OptionalAttendees": "optional_attendees",
                "EmailAddresses": "email_addresses",
            }[name]
            found = mailbox_addresses(item.fields[name]) or [c.text or "" for c in children(item.fields[name])]
            summary[key] = found
    return summary
