"""Write-through SQLite persistence for --data: memory stays the source of truth while running,
and every change is also written here so a restart can load it back."""

from __future__ import annotations

import json
import sqlite3
import threading

from .model import Event, Folder, Item, Mailbox

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mailboxes (address TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (id TEXT PRIMARY KEY, mailbox TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, mailbox TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, mailbox TEXT NOT NULL, folder_id TEXT NOT NULL,
                                   item_id TEXT NOT NULL, kind TEXT NOT NULL);
"""


class SqliteBackend:
    def __init__(self, path: str) -> None:
        # One connection shared under a lock: the store already serialises all writes.
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        self.lock = threading.Lock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.conn.commit()

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def save_mailbox(self, mailbox: Mailbox) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO mailboxes (address, data) VALUES (?, ?)",
            (mailbox.address, json.dumps(mailbox.__dict__)),
        )

    def delete_mailbox(self, address: str) -> None:
        for table in ("mailboxes",):
            self.conn.execute(f"DELETE FROM {table} WHERE address=?", (address,))
        for table in ("folders", "items", "events"):
            self.conn.execute(f"DELETE FROM {table} WHERE mailbox=?", (address,))

    def save_folder(self, folder: Folder) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO folders (id, mailbox, data) VALUES (?, ?, ?)",
            (folder.id, folder.mailbox, json.dumps(folder.to_json())),
        )

    def delete_folder(self, folder_id: str) -> None:
        self.conn.execute("DELETE FROM folders WHERE id=?", (folder_id,))

    def save_item(self, item: Item) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO items (id, mailbox, data) VALUES (?, ?, ?)",
            (item.id, item.mailbox, json.dumps(item.to_json())),
        )

    def delete_item(self, item_id: str) -> None:
        self.conn.execute("DELETE FROM items WHERE id=?", (item_id,))

    def add_event(self, mailbox: str, event: Event) -> None:
        self.conn.execute(
            "INSERT INTO events (seq, mailbox, folder_id, item_id, kind) VALUES (?, ?, ?, ?, ?)",
            (event.seq, mailbox, event.folder_id, event.item_id, event.kind),
        )

    def clear(self) -> None:
        for table in ("meta", "mailboxes", "folders", "items", "events"):
            self.conn.execute(f"DELETE FROM {table}")

    def commit(self) -> None:
        self.conn.commit()

    def load(self) -> tuple[list[Mailbox], list[Folder], list[Item], list[tuple[str, Event]]]:
        mailboxes = [Mailbox(**json.loads(r[0])) for r in self.conn.execute("SELECT data FROM mailboxes")]
        folders = [Folder(**json.loads(r[0])) for r in self.conn.execute("SELECT data FROM folders")]
        items = [Item.from_json(json.loads(r[0])) for r in self.conn.execute("SELECT data FROM items")]
        events = [
            (r[0], Event(r[1], r[2], r[3], r[4]))
            for r in self.conn.execute("SELECT mailbox, seq, folder_id, item_id, kind FROM events ORDER BY seq")
        ]
        return mailboxes, folders, items, events

    def close(self) -> None:
        self.conn.close()
