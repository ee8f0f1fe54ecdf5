"""The JSON control interface under /_ewsim/ (no auth: it is for tests and the demo)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote

from .ews import Simulator
from .faults import parse_rule
from .items import item_summary, message_from_mime
from .model import Folder
from .seed import item_from_json, update_from_json

Result = tuple[int, Any]
PREFIX = "/_ewsim/"


class BadRequest(ValueError):
    pass


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None


def _folder(sim: Simulator, address: str, name: str) -> Folder | None:
    """A folder by distinguished name, by id, or by display name directly below the message root."""
    store = sim.store
    folder = store.distinguished(address, name.lower())
    if folder is None:
        folder = store.folders.get(name)
        if folder is not None and folder.mailbox != address:
            folder = None
    if folder is None:
        folder = next(
            (f for f in store.folders.values() if f.mailbox == address and f.name.lower() == name.lower()), None
        )
    return folder


def add_mailbox(sim: Simulator, data: Any) -> Result:
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    address, password = data.get("address"), data.get("password")
    if not isinstance(address, str) or "@" not in address or not isinstance(password, str) or not password:
        raise BadRequest("'address' (an email address) and 'password' are required")
    with sim.store.lock:
        if sim.store.mailbox(address):
            return 409, {"error": f"mailbox {address} exists"}
        mailbox = sim.store.create_mailbox(
            address, password, bool(data.get("can_impersonate", False)), str(data.get("display_name") or "")
        )
    return 201, mailbox.as_dict()


def _items_route(sim: Simulator, method: str, address: str, folder_name: str, body: bytes) -> Result:
    with sim.store.lock:
        if sim.store.mailbox(address) is None:
            return 404, {"error": f"no mailbox {address}"}
        folder = _folder(sim, address, folder_name)
        if folder is None:
            return 404, {"error": f"no folder {folder_name}"}
        if method == "GET":
            return 200, [item_summary(i) for i in sim.store.folder_item_list(folder.id)]
        data = _json(body)
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        default_kind = {"CalendarFolder": "CalendarItem", "ContactsFolder": "Contact", "TasksFolder": "Task"}
        try:
            item = item_from_json(data, address, folder.id, default_kind.get(folder.kind, "Message"))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        sim.store.add_item(item)
        sim.store.commit()
        return 201, item_summary(item)


def _mime_route(sim: Simulator, address: str, folder_name: str, body: bytes, query: str) -> Result:
    """A message from raw RFC 822 text (the body), or JSON {"mime": "...", "is_read": false, "categories": []}."""
    is_read = parse_qs(query).get("is_read", ["false"])[0].lower() in ("1", "true")
    raw, categories = body, []
    if body.lstrip().startswith(b"{"):
        data = _json(body)
        if not isinstance(data, dict) or not isinstance(data.get("mime"), str):
            raise BadRequest("JSON body must be an object with 'mime' (the RFC 822 text)")
        raw, is_read = data["mime"].encode(), bool(data.get("is_read", is_read))
        categories = data.get("categories") or []
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise BadRequest("'categories' must be a list of strings")
    if not raw.strip():
        raise BadRequest("the body must be an RFC 822 message")
    with sim.store.lock:
        if sim.store.mailbox(address) is None:
            return 404, {"error": f"no mailbox {address}"}
        folder = _folder(sim, address, folder_name)
        if folder is None:
            return 404, {"error": f"no folder {folder_name}"}
        item = message_from_mime(raw, address, folder.id, is_read)
        if categories:
            update_from_json(item, {"categories": categories})
        sim.store.add_item(item)
        sim.store.commit()
        return 201, item_summary(item)


def _item_route(sim: Simulator, method: str, item_id: str, body: bytes) -> Result:
    with sim.store.lock:
        item = sim.store.items.get(item_id)
        if item is None:
            return 404, {"error": "no such item"}
        if method == "GET":
            return 200, item_summary(item)
        if method == "DELETE":
            sim.store.remove_item(item)
            sim.store.commit()
            return 204, None
        data = _json(body)
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        only_read = set(data) == {"is_read"}
        update_from_json(item, data)
        if set(data) - {"is_read", "categories", "importance", "sensitivity", "extended_properties"}:
            item.mime = b""  # the content changed: MimeContent is built from the properties again
        sim.store.touch_item(item, read_flag_only=only_read)
        sim.store.commit()
        return 200, item_summary(item)


def _mailbox_route(sim: Simulator, method: str, parts: list[str], body: bytes, query: str) -> Result | None:
    address = parts[1].lower()
    if len(parts) == 2 and method == "DELETE":
        with sim.store.lock:
            return (204, None) if sim.store.delete_mailbox(address) else (404, {"error": f"no mailbox {address}"})
    if len(parts) == 3 and parts[2] == "folders" and method == "GET":
        with sim.store.lock:
            return 200, [
                {
                    "id": f.id,
                    "name": f.name,
                    "distinguished": f.distinguished,
                    "parent_id": f.parent_id,
                    "folder_class": f.folder_class,
                }
                for f in sim.store.folders.values()
                if f.mailbox == address
            ]
    if len(parts) == 5 and parts[2] == "folders" and parts[4] == "items" and method in ("GET", "POST"):
        return _items_route(sim, method, address, parts[3], body)
    if len(parts) == 5 and parts[2] == "folders" and parts[4] == "mime" and method == "POST":
        return _mime_route(sim, address, parts[3], body, query)
    return None


def handle(sim: Simulator, method: str, path: str, body: bytes) -> Result:
    """Route one control request; returns (HTTP status, JSON-able body or None)."""
    route, _, query = path[len(PREFIX) :].partition("?")
    parts = [unquote(p) for p in route.strip("/").split("/")]
    try:
        result = _route(sim, method, parts, body, query)
    except BadRequest as exc:
        return 400, {"error": str(exc)}
    return result if result is not None else (404, {"error": f"no route {method} {path}"})


def _route(sim: Simulator, method: str, parts: list[str], body: bytes, query: str) -> Result | None:
    head = parts[0]
    if head == "health" and method == "GET":
        return 200, {"status": "ok"}
    if head == "mailboxes" and len(parts) == 1:
        if method == "POST":
            return add_mailbox(sim, _json(body))
        if method == "GET":
            with sim.store.lock:
                return 200, [m.as_dict() for m in sim.store.mailboxes.values()]
    if head == "mailboxes" and len(parts) >= 2:
        return _mailbox_route(sim, method, parts, body, query)
    if head == "items" and len(parts) == 2 and method in ("GET", "PATCH", "DELETE"):
        return _item_route(sim, method, parts[1], body)
    if head == "requests" and len(parts) == 1:
        if method == "GET":
            return 200, sim.request_log()
        if method == "DELETE":
            sim.clear_log()
            return 204, None
    if head == "faults" and len(parts) == 1:
        if method == "POST":
            try:
                rule = parse_rule(_json(body))
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            sim.faults.add(rule)
            return 201, rule.as_dict()
        if method == "GET":
            return 200, sim.faults.listing()
        if method == "DELETE":
            sim.faults.clear()
            return 204, None
    if head == "reset" and method == "POST":
        sim.store.reset()
        sim.faults.clear()
        sim.clear_log()
        return 200, {"status": "reset"}
    return None
