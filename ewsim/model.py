"""The simulator's records: mailboxes, folders, items and change-log events."""

from __future__ import annotations

import base64
import copy
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

# Distinguished folders every mailbox gets: name -> (display name, parent, FolderClass, XML element).
DISTINGUISHED: dict[str, tuple[str, str | None, str | None, str]] = {
    "root": ("", None, None, "Folder"),
    "msgfolderroot": ("Top of Information Store", "root", None, "Folder"),  # Exchange sets no class here
    "inbox": ("Inbox", "msgfolderroot", "IPF.Note", "Folder"),
    "sentitems": ("Sent Items", "msgfolderroot", "IPF.Note", "Folder"),
    "deleteditems": ("Deleted Items", "msgfolderroot", "IPF.Note", "Folder"),
    "drafts": ("Drafts", "msgfolderroot", "IPF.Note", "Folder"),
    "outbox": ("Outbox", "msgfolderroot", "IPF.Note", "Folder"),
    "junkemail": ("Junk Email", "msgfolderroot", "IPF.Note", "Folder"),
    "contacts": ("Contacts", "msgfolderroot", "IPF.Contact", "ContactsFolder"),
    "calendar": ("Calendar", "msgfolderroot", "IPF.Appointment", "CalendarFolder"),
    "tasks": ("Tasks", "msgfolderroot", "IPF.Task", "TasksFolder"),
    # The hidden dumpster: where SoftDelete puts items, out of every client-visible folder.
    "recoverableitemsroot": ("Recoverable Items", "root", None, "Folder"),
    "recoverableitemsdeletions": ("Deletions", "recoverableitemsroot", None, "Folder"),
}

FOLDER_KIND_BY_CLASS = {"IPF.Contact": "ContactsFolder", "IPF.Appointment": "CalendarFolder", "IPF.Task": "TasksFolder"}
ITEM_KINDS = ("Message", "CalendarItem", "Contact", "Task", "Item")
ITEM_CLASS_DEFAULT = {
    "Message": "IPM.Note",
    "CalendarItem": "IPM.Appointment",
    "Contact": "IPM.Contact",
    "Task": "IPM.Task",
    "Item": "IPM.Note",
}

# Change-log event kinds. "add"/"remove" change folder membership, the others change an existing member.
ADD, REMOVE, UPDATE, READ = "add", "remove", "update", "read"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_id() -> str:
    """An opaque id shaped like Exchange's (long base64)."""
    return base64.b64encode(b"\x00\x00\x00\x00" + uuid.uuid4().bytes + os.urandom(8)).decode()


def well_formed_id(text: str) -> bool:
    """Is this shaped like an id new_id() makes? (Anything else is ErrorInvalidIdMalformed, as in Exchange.)"""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return len(raw) == 28 and raw.startswith(b"\x00\x00\x00\x00")


def new_changekey(version: int) -> str:
    return base64.b64encode(version.to_bytes(4, "big") + os.urandom(8)).decode()


@dataclass
class Mailbox:
    address: str
    password: str
    can_impersonate: bool = False
    display_name: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "can_impersonate": self.can_impersonate, "display_name": self.display_name}


@dataclass
class Folder:
    id: str
    mailbox: str
    parent_id: str | None
    name: str
    folder_class: str | None
    kind: str
    distinguished: str | None = None
    version: int = 1
    changekey: str = ""

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class ExtProp:
    """One extended property: the ExtendedFieldURI attributes as the client sent them, and its value(s)."""

    attrs: dict[str, str]
    values: list[str]
    is_array: bool = False


def copy_attachments(attachments: list[Attachment]) -> list[Attachment]:
    """Deep copies with new ids, at every level (a copied item gets its own attachment ids, as in Exchange)."""
    copies = copy.deepcopy(attachments)
    pending = list(copies)
    while pending:
        attachment = pending.pop()
        attachment.id = new_id()
        if attachment.item is not None:
            pending.extend(attachment.item.attachments)
    return copies


@dataclass
class Attachment:
    """A FileAttachment (content) or an ItemAttachment (an embedded item, which may have attachments itself)."""

    id: str
    kind: str  # "FileAttachment" or "ItemAttachment"
    name: str = ""
    content_type: str | None = None
    content_id: str | None = None
    content_location: str | None = None
    is_inline: bool = False
    is_contact_photo: bool = False
    content: bytes = b""
    item: Item | None = None
    modified: datetime = field(default_factory=now)

    def to_json(self) -> dict[str, object]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("content", "item", "modified")}
        data["content"] = base64.b64encode(self.content).decode()
        data["item"] = self.item.to_json() if self.item is not None else None
        data["modified"] = self.modified.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict) -> Attachment:
        data = dict(data)
        data["content"] = base64.b64decode(data["content"])
        data["item"] = Item.from_json(data["item"]) if data["item"] is not None else None
        data["modified"] = datetime.fromisoformat(data["modified"])
        return cls(**data)


@dataclass
class Item:
    id: str
    mailbox: str
    folder_id: str
    kind: str
    fields: dict[str, etree._Element] = field(default_factory=dict)
    ext: dict[str, ExtProp] = field(default_factory=dict)
    version: int = 1
    changekey: str = ""
    is_read: bool = True
    created: datetime = field(default_factory=now)
    modified: datetime = field(default_factory=now)
    attachments: list[Attachment] = field(default_factory=list)
    # The RFC 822 text a message was made from (MimeContent, delivery), answered as its MimeContent
    # as Exchange keeps the MIME of internet mail; emptied when a user edit changes the content.
    mime: bytes = b""

    def text(self, name: str) -> str | None:
        elem = self.fields.get(name)
        return None if elem is None else "".join(elem.itertext())

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "mailbox": self.mailbox,
            "folder_id": self.folder_id,
            "kind": self.kind,
            "fields": {k: etree.tostring(v).decode() for k, v in self.fields.items()},
            "ext": {k: {"attrs": p.attrs, "values": p.values, "is_array": p.is_array} for k, p in self.ext.items()},
            "version": self.version,
            "changekey": self.changekey,
            "is_read": self.is_read,
            "created": self.created.isoformat(),
            "modified": self.modified.isoformat(),
            "attachments": [a.to_json() for a in self.attachments],
            "mime": base64.b64encode(self.mime).decode(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Item:
        return cls(
            id=data["id"],
            mailbox=data["mailbox"],
            folder_id=data["folder_id"],
            kind=data["kind"],
            fields={k: etree.fromstring(v) for k, v in data["fields"].items()},
            ext={k: ExtProp(**p) for k, p in data["ext"].items()},
            version=data["version"],
            changekey=data["changekey"],
            is_read=data["is_read"],
            created=datetime.fromisoformat(data["created"]),
            modified=datetime.fromisoformat(data["modified"]),
            attachments=[Attachment.from_json(a) for a in data.get("attachments", [])],
            mime=base64.b64decode(data.get("mime", "")),
        )

    def all_attachments(self) -> Iterator[tuple[Item, Attachment]]:
        """(holder, attachment) for every attachment, including those of embedded items."""
        for attachment in self.attachments:
            yield self, attachment
            if attachment.item is not None:
                yield from attachment.item.all_attachments()


@dataclass(frozen=True)
class Event:
    seq: int
    folder_id: str
    item_id: str
    kind: str
