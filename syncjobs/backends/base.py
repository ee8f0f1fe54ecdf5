"""The one interface between the engine and a mailbox server.

The engine speaks canonical values (syncjobs.mapping) and folder names
("contacts", "calendar", "tasks", "inbox", "sentitems"); a backend translates them
to its protocol. EWS is the first; a Microsoft Graph backend (delta queries: the
delta link is the sync state) fits the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# The mailbox folder each record type syncs with.
FOLDERS = {"contact": "contacts", "appointment": "calendar", "task": "tasks"}
# The folders each channel needs, for Test & Enable.
CHANNEL_FOLDERS = {"act": ("contacts", "calendar", "tasks"), "incoming": ("inbox",), "outgoing": ("sentitems",)}

CREATED, UPDATED, DELETED = "created", "updated", "deleted"


@dataclass(frozen=True)
class Change:
    kind: str  # CREATED, UPDATED or DELETED
    item_id: str
    change_key: str = ""


@dataclass
class FolderChanges:
    changes: list[Change]
    new_state: str
    requests: int = 0


@dataclass
class Item:
    """A mailbox item as canonical values, with what the engine needs besides."""

    item_id: str
    change_key: str
    values: dict[str, Any]
    crm_id: str | None = None  # the stamp the portal put on items it created
    categories: list[str] = field(default_factory=list)
    uid: str | None = None  # iCalendar UID of calendar items
    modified: float = 0.0


@dataclass
class Result:
    """The outcome of one write: the new id and change key, or an error."""

    item_id: str = ""
    change_key: str = ""
    error: Exception | None = None


class Backend(Protocol):
    def check(self) -> None:
        """Reach the server and authenticate, failing fast (PermanentError / TransientError)."""

    def test_folders(self, folders: tuple[str, ...]) -> None:
        """Open each folder; raise a SyncError that says which failed and why."""

    def sync_folder(self, folder: str, state: str) -> FolderChanges:
        """All changes since ``state`` (ids and change keys only) and the state after them."""

    def get_items(self, folder: str, ids: list[str]) -> list[Item]:
        """Full items; an id that no longer exists is left out."""

    def find_stamped(self, folder: str, crm_ids: list[str]) -> dict[str, Item]:
        """Items carrying these CRM ids in the portal's stamp."""

    def create_items(self, folder: str, items: list[tuple[str, dict[str, Any]]]) -> list[Result]:
        """Create (crm_id, values) items, each stamped with its CRM id."""

    def update_items(self, folder: str, updates: list[tuple[str, str, dict[str, Any], str | None]]) -> list[Result]:
        """(item_id, change_key, changes, crm_id to stamp or None); a stale change key is an ItemError(stale=True)."""

    def delete_items(self, folder: str, ids: list[str]) -> list[Result]:
        """Delete; an item already gone counts as deleted."""

    def close(self) -> None: ...
