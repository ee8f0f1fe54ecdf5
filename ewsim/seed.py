"""Building items from plain JSON, for the control interface and --seed files.

Produces the same property elements an EWS client would send, so seeded items behave exactly like
items created over EWS.
"""

from __future__ import annotations

from lxml import etree

from .items import apply_property, finish_item
from .model import ITEM_KINDS, Item
from .soap import el

# JSON key -> (element name, item kinds it applies to or None for all)
SIMPLE = {
    "subject": ("Subject", None),
    "sensitivity": ("Sensitivity", None),
    "importance": ("Importance", None),
    "item_class": ("ItemClass", None),
    "start": ("Start", "CalendarItem"),
    "end": ("End", "CalendarItem"),
    "location": ("Location", "CalendarItem"),
    "is_all_day": ("IsAllDayEvent", "CalendarItem"),
    "legacy_free_busy_status": ("LegacyFreeBusyStatus", "CalendarItem"),
    "display_name": ("DisplayName", "Contact"),
    "given_name": ("GivenName", "Contact"),
    "surname": ("Surname", "Contact"),
    "company_name": ("CompanyName", "Contact"),
    "job_title": ("JobTitle", "Contact"),
    "department": ("Department", "Contact"),
    "due_date": ("DueDate", "Task"),
    "start_date": ("StartDate", "Task"),
    "status": ("Status", "Task"),
    "percent_complete": ("PercentComplete", "Task"),
}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mailboxes(tag: str, addresses: list[str], entry: str = "t:Mailbox") -> etree._Element:
    outer = el(None, tag)
    for address in addresses:
        if entry == "t:Attendee":
            mbx = el(el(outer, "t:Attendee"), "t:Mailbox")
        else:
            mbx = el(outer, "t:Mailbox")
        el(mbx, "t:EmailAddress", address)
    return outer


def _extended(spec: dict) -> etree._Element:
    prop = el(None, "t:ExtendedProperty")
    attrs = {
        k: _text(spec[j])
        for j, k in (
            ("distinguished_property_set_id", "DistinguishedPropertySetId"),
            ("property_set_id", "PropertySetId"),
            ("property_tag", "PropertyTag"),
            ("property_name", "PropertyName"),
            ("property_id", "PropertyId"),
        )
        if spec.get(j) is not None
    }
    attrs["PropertyType"] = spec.get("property_type", "String")
    el(prop, "t:ExtendedFieldURI", **attrs)
    value = spec.get("value")
    if isinstance(value, list):
        values = el(prop, "t:Values")
        for v in value:
            el(values, "t:Value", _text(v))
    else:
        el(prop, "t:Value", _text(value))
    return prop


def item_from_json(data: dict, mailbox: str, folder_id: str, default_kind: str) -> Item:
    """Raises ValueError on a spec that cannot be turned into an item."""
    kind = data.get("type", default_kind)
    if kind not in ITEM_KINDS:
        raise ValueError(f"'type' must be one of {', '.join(ITEM_KINDS)}")
    item = Item(id="", mailbox=mailbox, folder_id=folder_id, kind=kind)
    props: list[etree._Element] = []
    for key, (name, only) in SIMPLE.items():
        if key in data and (only is None or only == kind):
            props.append(el(None, f"t:{name}", _text(data[key])))
    if "body" in data:
        props.append(el(None, "t:Body", _text(data["body"]), BodyType=data.get("body_type", "Text")))
    if data.get("categories"):
        cats = el(None, "t:Categories")
        for category in data["categories"]:
            el(cats, "t:String", _text(category))
        props.append(cats)
    if kind == "Message":
        for key, tag in (("to", "t:ToRecipients"), ("cc", "t:CcRecipients")):
            if data.get(key):
                props.append(_mailboxes(tag, list(data[key])))
        if data.get("from"):
            props.append(_mailboxes("t:From", [data["from"]]))
        props.append(el(None, "t:IsRead", _text(data.get("is_read", False))))
    if kind == "CalendarItem" and data.get("required_attendees"):
        props.append(_mailboxes("t:RequiredAttendees", list(data["required_attendees"]), "t:Attendee"))
    if kind == "Contact" and data.get("email"):
        emails = el(None, "t:EmailAddresses")
        el(emails, "t:Entry", _text(data["email"]), Key="EmailAddress1")
        props.append(emails)
    for spec in data.get("extended_properties", []):
        props.append(_extended(spec))
    for prop in props:
        apply_property(item, prop)
    finish_item(item)
    return item


def update_from_json(item: Item, data: dict) -> None:
    """Apply a user-style edit (control interface PATCH): the same keys as item_from_json."""
    fresh = item_from_json({**data, "type": item.kind}, item.mailbox, item.folder_id, item.kind)
    item.fields.update(fresh.fields)
    item.ext.update(fresh.ext)
    finish_item(item)
    if "is_read" in data:
        item.is_read = bool(data["is_read"])
