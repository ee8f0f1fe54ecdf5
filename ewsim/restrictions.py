"""Evaluate EWS Restriction trees (FindItem / FindFolder) against stored items."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime

from lxml import etree

from .faults import EwsError
from .items import FieldPath, calendar_item_type, find_path, iso, parse_path
from .model import ITEM_CLASS_DEFAULT, Item
from .soap import child, children, local

_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "IsEqualTo": operator.eq,
    "IsNotEqualTo": operator.ne,
    "IsGreaterThan": operator.gt,
    "IsGreaterThanOrEqualTo": operator.ge,
    "IsLessThan": operator.lt,
    "IsLessThanOrEqualTo": operator.le,
}


def field_values(item: Item, path: FieldPath) -> list[str]:
    """All values of a property on an item, as text (multi-valued properties give several)."""
    if path.is_ext:
        prop = item.ext.get(path.name[4:])
        return list(prop.values) if prop else []
    computed = {
        "ItemClass": lambda: [item.text("ItemClass") or ITEM_CLASS_DEFAULT[item.kind]],
        "IsRead": lambda: ["true" if item.is_read else "false"],
        "DateTimeCreated": lambda: [iso(item.created)],
        "DateTimeReceived": lambda: [iso(item.created)],
        "LastModifiedTime": lambda: [iso(item.modified)],
        "ItemId": lambda: [item.id],
        "HasAttachments": lambda: ["true" if item.attachments else "false"],
        "CalendarItemType": lambda: [calendar_item_type(item)] if item.kind == "CalendarItem" else [],
    }
    if path.name in computed and path.name not in item.fields:
        return computed[path.name]()
    elem = item.fields.get(path.name)
    if elem is None:
        return []
    if path.index is not None:
        return _indexed_values(elem, path)
    leaves = [c for c in elem.iter() if isinstance(c.tag, str) and len(c) == 0]
    if leaves == [elem]:
        return [elem.text or ""]
    # Mailbox-like properties compare on their address; lists (Categories) on each entry.
    addresses = [c.text or "" for c in leaves if local(c.tag) == "EmailAddress"]
    return addresses or [c.text or "" for c in leaves]


def _indexed_values(container: etree._Element, path: FieldPath) -> list[str]:
    for entry in children(container):
        if entry.get("Key") == path.index:
            if path.sub:
                sub = child(entry, path.sub)
                return [] if sub is None else [sub.text or ""]
            return ["".join(entry.itertext())]
    return []


def _typed(value: str, constant: str) -> tuple[object, object]:
    """Compare as datetimes, numbers or booleans when both sides parse that way, else as folded text."""
    for convert in (_as_datetime, float, _as_bool):
        try:
            return convert(value), convert(constant)
        except (ValueError, TypeError):
            continue
    return value.casefold(), constant.casefold()


def _as_datetime(text: str) -> datetime:
    if "T" not in text:
        raise ValueError(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(text)
    return parsed


def _as_bool(text: str) -> bool:
    if text.strip().lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
    return text.strip().lower() in ("true", "1")


def _constant(elem: etree._Element) -> str:
    holder = child(elem, "FieldURIOrConstant")
    const = child(holder if holder is not None else elem, "Constant")
    if const is None:
        raise EwsError("ErrorUnsupportedPathForQuery", "Only constants are supported on the right-hand side")
    return const.get("Value") or ""


def _contains(elem: etree._Element, item: Item) -> bool:
    needle = _constant(elem)
    mode = elem.get("ContainmentMode", "Substring")
    ignore_case = "IgnoreCase" in elem.get("ContainmentComparison", "Exact")
    for value in field_values(item, parse_path(find_path(elem))):
        hay, pin = (value.casefold(), needle.casefold()) if ignore_case else (value, needle)
        if (
            (mode == "FullString" and hay == pin)
            or (mode == "Prefixed" and hay.startswith(pin))
            or (mode not in ("FullString", "Prefixed") and pin in hay)
        ):
            return True
    return False


def matches(elem: etree._Element, item: Item) -> bool:
    kind = local(elem.tag)
    if kind == "And":
        return all(matches(c, item) for c in children(elem))
    if kind == "Or":
        return any(matches(c, item) for c in children(elem))
    if kind == "Not":
        return not matches(children(elem)[0], item)
    if kind == "Exists":
        return bool(field_values(item, parse_path(find_path(elem))))
    if kind == "Contains":
        return _contains(elem, item)
    if kind in _COMPARE:
        path_elem = find_path(elem)
        if path_elem is None:
            raise EwsError("ErrorSchemaValidation", f"{kind} needs a property path")
        constant = _constant(elem)
        values = field_values(item, parse_path(path_elem))
        if kind == "IsNotEqualTo":
            return all(_COMPARE[kind](*_typed(v, constant)) for v in values)
        return any(_COMPARE[kind](*_typed(v, constant)) for v in values)
    raise EwsError("ErrorUnsupportedQueryFilter", f"Restriction element {kind!r} is not supported")


def restriction_filter(restriction: etree._Element | None) -> Callable[[Item], bool]:
    nodes = children(restriction)
    if not nodes:
        return lambda item: True
    return lambda item: matches(nodes[0], item)


def sort_key(order_elem: etree._Element | None) -> list[tuple[FieldPath, bool]]:
    """(path, descending) pairs from a SortOrder element."""
    return [(parse_path(find_path(f)), f.get("Order") == "Descending") for f in children(order_elem)]


def sort_items(items: list[Item], order: list[tuple[FieldPath, bool]]) -> list[Item]:
    for path, descending in reversed(order):

        def key(item: Item, path: FieldPath = path) -> tuple[int, object]:
            values = field_values(item, path)
            if not values:
                return (0, "")
            try:
                return (1, _as_datetime(values[0]).timestamp())
            except ValueError:
                pass
            try:
                return (2, float(values[0]))
            except ValueError:
                return (3, values[0].casefold())

        items = sorted(items, key=key, reverse=descending)
    return items
