"""The simulator's state: mailboxes, folders, items and the per-folder change log behind sync states.

All access goes through one re-entrant lock (`store.lock`): each EWS request runs its whole operation
under it, which keeps concurrent clients consistent without finer-grained locking.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterator

from .faults import EwsError
from .model import (
    ADD,
    DISTINGUISHED,
    READ,
    REMOVE,
    UPDATE,
    Attachment,
    Event,
    Folder,
    Item,
    Mailbox,
    new_changekey,
    new_id,
    now,
)
from .persistence import SqliteBackend

HIERARCHY = "#hierarchy"  # pseudo folder id under which folder create/update events are logged


def invalid_sync_state() -> EwsError:
    return EwsError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid.")


class Store:
    def __init__(self, data_path: str | None = None) -> None:
        self.lock = threading.RLock()
        self.backend = SqliteBackend(data_path) if data_path else None
        self._init_empty()
        if self.backend:
            self._load()

    # ---- setup and persistence -------------------------------------------------------------
    def _init_empty(self) -> None:
        self.mailboxes: dict[str, Mailbox] = {}
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}
        self.folder_items: dict[str, dict[str, None]] = {}  # folder id -> item ids, insertion-ordered
        self.events: dict[str, list[Event]] = {}  # folder id (or HIERARCHY+mailbox) -> events by seq
        self.member_events: dict[tuple[str, str], list[Event]] = {}  # (folder, item) -> add/remove events
        self.attachment_roots: dict[str, str] = {}  # attachment id (at any depth) -> id of the item holding it
        self.seq = 0
        # Sync states are signed so that garbage or a state from another store is rejected.
        self.secret = os.urandom(16).hex()

    def _load(self) -> None:
        assert self.backend is not None
        secret = self.backend.get_meta("secret")
        if secret is None:
            self.backend.set_meta("secret", self.secret)
            self.backend.commit()
        else:
            self.secret = secret
        mailboxes, folders, items, events = self.backend.load()
        for mailbox in mailboxes:
            self.mailboxes[mailbox.address] = mailbox
        for folder in folders:
            self.folders[folder.id] = folder
            self.folder_items.setdefault(folder.id, {})
        for item in items:
            self.items[item.id] = item
            self.folder_items.setdefault(item.folder_id, {})[item.id] = None
            self.index_attachments(item)
        for mailbox_address, event in events:
            self._index_event(mailbox_address, event)
            self.seq = max(self.seq, event.seq)
        self.seq = max(self.seq, int(self.backend.get_meta("seq") or 0))

    def commit(self) -> None:
        if self.backend:
            self.backend.set_meta("seq", str(self.seq))
            self.backend.commit()

    def reset(self) -> None:
        with self.lock:
            self._init_empty()
            if self.backend:
                self.backend.clear()
                self.backend.set_meta("secret", self.secret)
                self.commit()

    # ---- change log ------------------------------------------------------------------------
    def _log_key(self, mailbox: str, folder_id: str) -> str:
        return HIERARCHY + mailbox if folder_id == HIERARCHY else folder_id

    def _index_event(self, mailbox: str, event: Event) -> None:
        self.events.setdefault(self._log_key(mailbox, event.folder_id), []).append(event)
        if event.kind in (ADD, REMOVE):
            self.member_events.setdefault((event.folder_id, event.item_id), []).append(event)

    def _log(self, mailbox: str, folder_id: str, item_id: str, kind: str) -> None:
        self.seq += 1
        event = Event(self.seq, folder_id, item_id, kind)
        self._index_event(mailbox, event)
        if self.backend:
            self.backend.add_event(mailbox, event)

    def events_after(self, mailbox: str, folder_id: str, seq: int) -> list[Event]:
        log = self.events.get(self._log_key(mailbox, folder_id), [])
        return log[bisect.bisect_right(log, seq, key=lambda e: e.seq) :]

    def was_member(self, folder_id: str, item_id: str, seq: int) -> bool:
        """Was the item in the folder right after change number `seq`?"""
        log = self.member_events.get((folder_id, item_id), [])
        pos = bisect.bisect_right(log, seq, key=lambda e: e.seq)
        return pos > 0 and log[pos - 1].kind == ADD

    # ---- sync state tokens -------------------------------------------------------------------
    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest()[:24]

    def make_sync_state(self, mailbox: str, scope: str, seq: int) -> str:
        payload = json.dumps({"m": mailbox, "f": scope, "s": seq}, separators=(",", ":")).encode()
        return base64.b64encode(payload).decode() + "." + self._sign(payload)

    def read_sync_state(self, token: str, mailbox: str, scope: str) -> int:
        """The change number a sync state stands for; ErrorInvalidSyncStateData if it is not ours."""
        try:
            encoded, signature = token.strip().rsplit(".", 1)
            payload = base64.b64decode(encoded, validate=True)
            data = json.loads(payload)
        except (ValueError, TypeError):
            raise invalid_sync_state() from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid_sync_state()
        if data.get("m") != mailbox or data.get("f") != scope or not isinstance(data.get("s"), int):
            raise invalid_sync_state()
        if data["s"] > self.seq:
            raise invalid_sync_state()
        return data["s"]

    # ---- mailboxes ---------------------------------------------------------------------------
    def create_mailbox(
        self, address: str, password: str, can_impersonate: bool = False, display_name: str = ""
    ) -> Mailbox:
        address = address.lower()
        if address in self.mailboxes:
            raise KeyError(address)
        mailbox = Mailbox(address, password, can_impersonate, display_name or address.split("@")[0])
        self.mailboxes[address] = mailbox
        if self.backend:
            self.backend.save_mailbox(mailbox)
        ids: dict[str, str] = {}
        for name, (display, parent, folder_class, kind) in DISTINGUISHED.items():
            ids[name] = new_id()
            folder = Folder(ids[name], address, ids[parent] if parent else None, display, folder_class, kind, name)
            self._add_folder(folder)
        self.commit()
        return mailbox

    def delete_mailbox(self, address: str) -> bool:
        address = address.lower()
        if self.mailboxes.pop(address, None) is None:
            return False
        for folder in [f for f in self.folders.values() if f.mailbox == address]:
            for item_id in self.folder_items.pop(folder.id, {}):
                self.items.pop(item_id, None)
            del self.folders[folder.id]
            self.events.pop(folder.id, None)
        self.events.pop(HIERARCHY + address, None)
        if self.backend:
            self.backend.delete_mailbox(address)
        self.commit()
        return True

    def mailbox(self, address: str) -> Mailbox | None:
        return self.mailboxes.get(address.lower())

    # ---- folders -----------------------------------------------------------------------------
    def _add_folder(self, folder: Folder) -> None:
        folder.changekey = new_changekey(folder.version)
        self.folders[folder.id] = folder
        self.folder_items[folder.id] = {}
        self._log(folder.mailbox, HIERARCHY, folder.id, ADD)
        if self.backend:
            self.backend.save_folder(folder)

    def create_folder(self, mailbox: str, parent_id: str, name: str, folder_class: str | None, kind: str) -> Folder:
        folder = Folder(new_id(), mailbox, parent_id, name, folder_class, kind)
        self._add_folder(folder)
        return folder

    def remove_folder(self, folder: Folder) -> None:
        self.folders.pop(folder.id, None)
        self.folder_items.pop(folder.id, None)
        self._log(folder.mailbox, HIERARCHY, folder.id, REMOVE)
        if self.backend:
            self.backend.delete_folder(folder.id)

    def distinguished(self, mailbox: str, name: str) -> Folder | None:
        for folder in self.folders.values():
            if folder.mailbox == mailbox and folder.distinguished == name:
                return folder
        return None

    def child_folders(self, folder_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == folder_id]

    def descendants(self, folder_id: str) -> Iterator[Folder]:
        for sub in self.child_folders(folder_id):
            yield sub
            yield from self.descendants(sub.id)

    def folder_item_list(self, folder_id: str) -> list[Item]:
        return [self.items[i] for i in self.folder_items.get(folder_id, {})]

    # ---- items -------------------------------------------------------------------------------
    def add_item(self, item: Item) -> Item:
        item.id = item.id or new_id()
        item.changekey = new_changekey(item.version)
        self.items[item.id] = item
        self.folder_items[item.folder_id][item.id] = None
        self.index_attachments(item)
        self._log(item.mailbox, item.folder_id, item.id, ADD)
        self._save(item)
        return item

    def touch_item(self, item: Item, read_flag_only: bool = False) -> None:
        """Record a change to an item: new change key, modified time, and a change-log event."""
        item.version += 1
        item.changekey = new_changekey(item.version)
        item.modified = now()
        self.index_attachments(item)
        self._log(item.mailbox, item.folder_id, item.id, READ if read_flag_only else UPDATE)
        self._save(item)

    def remove_item(self, item: Item) -> None:
        self.items.pop(item.id, None)
        for _, attachment in item.all_attachments():
            self.attachment_roots.pop(attachment.id, None)
        self.folder_items[item.folder_id].pop(item.id, None)
        self._log(item.mailbox, item.folder_id, item.id, REMOVE)
        if self.backend:
            self.backend.delete_item(item.id)

    def move_item(self, item: Item, dest_id: str) -> Item:
        """Moving gives the item a new id, as Exchange does."""
        self.remove_item(item)
        item.id = new_id()
        item.folder_id = dest_id
        item.version += 1
        return self.add_item(item)

    # ---- attachments -------------------------------------------------------------------------
    def index_attachments(self, item: Item) -> None:
        for _, attachment in item.all_attachments():
            self.attachment_roots[attachment.id] = item.id

    def find_attachment(self, attachment_id: str) -> tuple[Item, Item, Attachment] | None:
        """(the item in a folder, the item directly holding the attachment, the attachment), if it exists."""
        root = self.items.get(self.attachment_roots.get(attachment_id, ""))
        for holder, attachment in root.all_attachments() if root is not None else ():
            if attachment.id == attachment_id:
                return root, holder, attachment
        return None

    def _save(self, item: Item) -> None:
        if self.backend:
            self.backend.save_item(item)
