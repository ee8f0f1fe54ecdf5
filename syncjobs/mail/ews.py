"""Incoming email over EWS: SyncFolderItems on the Inbox (and tracked folders), then the MIME.

1. One SyncFolderItems page per ``fetch``, ids and a few small properties only (received time,
   size, categories, conversation): the caller stores what it tracked, then keeps the new state.
2. Then GetItem with MimeContent, 50 items a request, only for messages that may become CRM
   emails: one received before the mailbox's "process email received after" mark, or larger than
   ``EMAIL_MAX_BYTES``, is passed on without its content (the tracker skips or records it).
3. Created and updated items are passed on (an update may be the tracked category added later;
   a message the CRM has already costs the tracker nothing); deletes and read flags are not.
The connection, credentials and error words are those of ``syncjobs.backends.ews``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exchangelib import Folder, Message
from exchangelib import errors as ews_errors
from exchangelib.folders import FolderCollection
from exchangelib.items import ID_ONLY
from exchangelib.services import SyncFolderItems

from syncjobs.backends.ews import EwsBackend, _chunks, classify
from syncjobs.mail.parse import max_bytes
from syncjobs.mail.transport import Batch, Fetched

MAX_PAGE = 512  # EWS returns at most 512 changes per SyncFolderItems call
MIME_BATCH = 50
SYNC_FIELDS = ["datetime_received", "size", "categories", "conversation_index", "conversation_id"]


class EwsIncoming(EwsBackend):
    """The IncomingTransport of Exchange mailboxes (``syncjobs.mail.transport.IncomingTransport``)."""

    def __init__(self, mailbox: Any) -> None:
        super().__init__(mailbox)
        self.received_after: datetime | None = mailbox.email_received_after()

    def _mail_folder(self, folder: str) -> Any:
        if folder == "inbox":
            return self._folder("inbox")
        self._folder("inbox")  # sets up the root
        return Folder(id=folder, root=self._root)

    def folder_id(self, name: str) -> str | None:
        """The id of the folder called ``name`` directly under the Inbox (tracked folders), if any."""

        def find() -> str | None:
            below = FolderCollection(account=self.account, folders=[self._folder("inbox")]).find_folders()
            for child in below:
                if isinstance(child, Folder) and (child.name or "").lower() == name.lower():
                    return child.id
            return None

        return self._call(find)

    def fetch(self, folder: str, state: str, limit: int) -> Batch:
        fld = self._mail_folder(folder)
        service = SyncFolderItems(account=self.account)
        fields = {f for f in fld.normalize_fields(fields=SYNC_FIELDS) if not f.field.is_attribute}

        def page() -> list[tuple[str, Any]]:
            return list(
                service.call(
                    folder=fld,
                    shape=ID_ONLY,
                    additional_fields=fields,
                    sync_state=state or None,
                    ignore=None,
                    max_changes_returned=max(1, min(limit, MAX_PAGE)),
                    sync_scope=None,
                )
            )

        changes = self._call(page)
        items = [item for kind, item in changes if kind in ("create", "update") and isinstance(item, Message)]
        wanted = [i for i in items if self._wanted(i)]
        mime = self._mime(fld, [i.id for i in wanted])
        messages = [
            Fetched(
                source_id=item.id,
                raw=mime.get(item.id, b""),
                folder=folder,
                categories=tuple(item.categories or ()),
                received_at=_plain(item.datetime_received),
                conversation_index=item.conversation_index or b"",
                conversation_id=item.conversation_id.id if item.conversation_id else "",
                size=item.size,
            )
            for item in items
            if item.id in mime or not self._wanted(item)
        ]
        return Batch(messages=messages, state=service.sync_state or "", more=not service.includes_last_item_in_range)

    def _wanted(self, item: Message) -> bool:
        """Whether the tracker may need the message's content."""
        received = _plain(item.datetime_received)
        if self.received_after is not None and received is not None and received < self.received_after:
            return False
        return not (item.size and item.size > max_bytes())

    def _mime(self, fld: Any, ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for chunk in _chunks(ids, MIME_BATCH):
            answers = self._call(
                lambda chunk=chunk: list(
                    self.account.fetch(ids=[(i, None) for i in chunk], folder=fld, only_fields=["mime_content"])
                )
            )
            for answer in answers:
                if isinstance(answer, ews_errors.ErrorItemNotFound):
                    continue  # gone since the sync: nothing to track
                if isinstance(answer, Exception):
                    self._failed = True
                    raise classify(answer)
                found[answer.id] = answer.mime_content or b""
        return found

    def delete(self, folder: str, source_ids: list[str]) -> None:
        for chunk in _chunks(source_ids, 100):
            self._call(
                lambda chunk=chunk: self.account.bulk_delete(ids=[(i, None) for i in chunk], delete_type="HardDelete")
            )


def _plain(value: Any) -> datetime | None:
    """An EWSDateTime as a plain aware datetime (Django and comparisons want those)."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC) if value is not None else None
