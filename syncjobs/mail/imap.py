"""Incoming email over IMAP (imaplib), and the Sent folder of IMAP/SMTP profiles.

A folder's messages are known by UID within the folder's UIDVALIDITY: ``source_id`` is
"<uidvalidity>:<uid>" and the sync state "<uidvalidity>:<highest uid fetched>". Messages are
read with BODY.PEEK[], so none is marked read. When the server's UIDVALIDITY changes (it rebuilt
the folder, and UIDs start again), the fetch starts from the beginning: tracking knows the
messages it has by Message-ID. A message over EMAIL_MAX_BYTES comes with its header only
(RFC822.SIZE is asked first); its keywords (IMAP flags that are not system flags) are its
categories.

Folders: "inbox", or a folder's name as users see it, with the server's separator
("Projects/Acme"); it is sent in IMAP's modified UTF-7.
"""

from __future__ import annotations

import base64
import email.parser
import imaplib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from mailboxes.models import Mailbox
from syncjobs.errors import PermanentError, SyncError, TransientError
from syncjobs.mail.connection import (
    Endpoint,
    incoming_endpoint,
    no_starttls,
    quietly,
    refused_credentials,
    tls_context,
    translated,
    words,
)
from syncjobs.mail.parse import max_bytes
from syncjobs.mail.transport import Batch, Fetched

log = logging.getLogger(__name__)

T = TypeVar("T")
INBOX = "inbox"
# Where IMAP servers keep sent mail when no folder says so (RFC 6154 \Sent first).
SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail")
MONTHS = {name: number for number, name in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
INTERNALDATE_RE = re.compile(rb'INTERNALDATE "\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
UID_RE = re.compile(rb"\bUID (\d+)")
FLAGS_RE = re.compile(rb"\bFLAGS \(([^)]*)\)")
SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
LIST_RE = re.compile(rb'\((?P<attrs>[^)]*)\) (?P<delimiter>"(?:[^"\\]|\\.)*"|NIL) ?(?P<name>.*)')


class IMAPFailed(imaplib.IMAP4.error):
    """The server answered NO (or something other than OK) to a command."""


def _protocol_error(error: Exception) -> SyncError | None:
    if isinstance(error, imaplib.IMAP4.abort):
        return TransientError(f"The IMAP connection broke: {words(error)}")
    if isinstance(error, imaplib.IMAP4.error):
        return TransientError(f"The IMAP server answered: {words(error)}")
    return None


class IMAPTransport:
    """An IncomingTransport over IMAP: one session, opened on first use, for the transport's life."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._imap: imaplib.IMAP4 | None = None
        self._capabilities: set[str] = set()
        self._sent: str | None = None

    @classmethod
    def for_mailbox(cls, mailbox: Mailbox) -> IMAPTransport:
        return cls(incoming_endpoint(mailbox))

    # Sessions

    def _session(self) -> imaplib.IMAP4:
        if self._imap is not None:
            return self._imap
        endpoint = self.endpoint
        with translated(endpoint, _protocol_error):
            if endpoint.implicit_tls:
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    endpoint.host, endpoint.port, ssl_context=tls_context(), timeout=endpoint.timeout
                )
            else:
                imap = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=endpoint.timeout)
            try:
                if endpoint.starttls:
                    if "STARTTLS" not in imap.capabilities:
                        raise no_starttls(endpoint)
                    imap.starttls(ssl_context=tls_context())
                try:
                    imap.login(endpoint.username, endpoint.password)
                except imaplib.IMAP4.abort:
                    raise
                except imaplib.IMAP4.error as error:
                    raise refused_credentials(error) from error
                # What the server offers once logged in (UIDPLUS...), not before.
                self._capabilities = set(_ok(imap.capability(), "CAPABILITY")[-1].decode().upper().split())
            except BaseException:
                quietly(imap.shutdown)
                raise
        self._imap = imap
        return imap

    def _run(self, work: Callable[[imaplib.IMAP4], T]) -> T:
        """Do ``work(session)``; a failed session is dropped (the next call opens another)."""
        imap = self._session()
        try:
            with translated(self.endpoint, _protocol_error):
                return work(imap)
        except BaseException:
            self._imap = None
            quietly(imap.shutdown)
            raise

    def close(self) -> None:
        if self._imap is not None:
            quietly(self._imap.logout)
            self._imap = None

    def check(self) -> None:
        """Log in and open the inbox (Test & Enable)."""
        self._run(lambda imap: _select(imap, "INBOX", readonly=True))

    # The IncomingTransport protocol

    def fetch(self, folder: str, state: str, limit: int) -> Batch:
        """The folder's messages above the UID high-water mark, oldest first, at most ``limit``."""
        name = folder_name(folder)

        def work(imap: imaplib.IMAP4) -> Batch:
            uidvalidity = _select(imap, name, readonly=True)
            validity, last = _parse_state(state)
            if validity != uidvalidity:
                if validity is not None:
                    log.info("UIDVALIDITY of %s changed (%s → %s): fetching it again", folder, validity, uidvalidity)
                last = 0
            # "n:*" always includes the highest UID, even below n: keep only the new ones.
            uids = sorted(uid for uid in _search(imap, "UID", f"{last + 1}:*") if uid > last)
            batch = uids[:limit]
            messages = [
                Fetched(
                    source_id=f"{uidvalidity}:{item.uid}",
                    raw=item.literal,
                    folder=folder,
                    categories=tuple(flag for flag in item.flags if not flag.startswith("\\")),
                    received_at=item.received,
                    size=item.size,
                )
                for item in _messages(imap, batch)
            ]
            high = batch[-1] if batch else last
            return Batch(messages=messages, state=f"{uidvalidity}:{high}", more=len(uids) > limit)

        return self._run(work)

    def delete(self, folder: str, source_ids: list[str]) -> None:
        """Flag the messages \\Deleted and expunge them (only those; UID EXPUNGE where offered)."""
        name = folder_name(folder)

        def work(imap: imaplib.IMAP4) -> None:
            uidvalidity = _select(imap, name, readonly=False)
            uids = []
            for source_id in source_ids:
                validity, uid = _parse_state(source_id)
                if validity == uidvalidity and uid:
                    uids.append(uid)  # another UIDVALIDITY: that message is not the one meant
            self._remove(imap, uids)

        self._run(work)

    def _remove(self, imap: imaplib.IMAP4, uids: list[int]) -> None:
        if not uids:
            return
        _ok(imap.uid("STORE", _uid_set(uids), "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
        if "UIDPLUS" in self._capabilities:
            _ok(imap.uid("EXPUNGE", _uid_set(uids)), "UID EXPUNGE")
        else:
            _ok(imap.expunge(), "EXPUNGE")

    # The Sent folder (IMAP/SMTP profiles keep a copy of what they send there)

    def sent_folder(self) -> str:
        """The server's name of the Sent folder: \\Sent (RFC 6154), a usual name, or "Sent", created."""
        if self._sent is None:
            self._sent = self._run(_find_or_create_sent)
        return self._sent

    def append(self, folder: str, raw: bytes, flags: str) -> int | None:
        """Add a message to a folder (its server name); its UID when the server says (UIDPLUS)."""

        def work(imap: imaplib.IMAP4) -> int | None:
            data = _ok(imap.append(_quoted(folder), f"({flags})", None, raw), "APPEND")
            found = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[-1] or b"")
            return int(found.group(1)) if found else None

        return self._run(work)

    def find(self, folder: str, header: str, value: str) -> dict[int, set[str]]:
        """The messages of a folder (its server name) whose ``header`` is ``value``: UID → flags."""

        def work(imap: imaplib.IMAP4) -> dict[int, set[str]]:
            _select(imap, folder, readonly=True)
            # SEARCH HEADER matches substrings: read the header to keep exact matches only.
            candidates = _search(imap, "HEADER", header, _quoted(value))
            found = {}
            for item in _fetch(imap, candidates, f"FLAGS BODY.PEEK[HEADER.FIELDS ({header})]").values():
                values = email.parser.BytesHeaderParser().parsebytes(item.literal).get_all(header) or []
                if any(str(v).strip() == value for v in values):
                    found[item.uid] = item.flags
            return found

        return self._run(work)

    def set_flags(self, folder: str, uids: list[int], change: str, flags: str) -> None:
        """``change``: "+FLAGS" or "-FLAGS", on messages of a folder (its server name)."""

        def work(imap: imaplib.IMAP4) -> None:
            _select(imap, folder, readonly=False)
            _ok(imap.uid("STORE", _uid_set(uids), f"{change}.SILENT", f"({flags})"), "STORE")

        if uids:
            self._run(work)

    def remove(self, folder: str, uids: list[int]) -> None:
        """Delete messages of a folder (its server name) by UID."""

        def work(imap: imaplib.IMAP4) -> None:
            _select(imap, folder, readonly=False)
            self._remove(imap, uids)

        if uids:
            self._run(work)


def _ok(result: tuple[str, list[Any]], what: str = "") -> list[Any]:
    typ, data = result
    if typ != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise IMAPFailed(f"{what} {typ}: {text}".strip())
    return data


def _select(imap: imaplib.IMAP4, name: str, readonly: bool) -> int:
    """Open a folder (its server name); returns its UIDVALIDITY."""
    typ, data = imap.select(_quoted(name), readonly=readonly)
    if typ != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        if "NONEXISTENT" in text.upper() or "DOESN'T EXIST" in text.upper():
            raise PermanentError(f"The folder “{_display(name)}” does not exist on the server: {text}")
        raise IMAPFailed(f"SELECT {typ}: {text}")
    _typ, values = imap.response("UIDVALIDITY")
    if not values or values[-1] is None:
        raise TransientError(f"The server gave no UIDVALIDITY for the folder “{_display(name)}”.")
    return int(values[-1])


def _search(imap: imaplib.IMAP4, *criteria: str) -> list[int]:
    data = _ok(imap.uid("SEARCH", *criteria), "SEARCH")
    return [int(uid) for line in data if line for uid in line.split()]


@dataclass
class _Item:
    """What a UID FETCH said of one message."""

    uid: int
    flags: set[str]
    received: datetime | None
    size: int | None
    literal: bytes  # the part asked for, b"" when none was


def _messages(imap: imaplib.IMAP4, uids: list[int]) -> list[_Item]:
    """Whole messages in UID order; one over EMAIL_MAX_BYTES comes with its header only."""
    items = _fetch(imap, uids, "FLAGS INTERNALDATE RFC822.SIZE")
    limit = max_bytes()
    small = [uid for uid, item in items.items() if (item.size or 0) <= limit]
    big = [uid for uid in items if uid not in small]
    for part, chosen in (("BODY.PEEK[]", small), ("BODY.PEEK[HEADER]", big)):
        for uid, content in _fetch(imap, chosen, part).items():
            items[uid].literal = content.literal
    return [items[uid] for uid in sorted(items)]


def _fetch(imap: imaplib.IMAP4, uids: list[int], what: str) -> dict[int, _Item]:
    """UID FETCH ``what`` of each message: UID → what the server said (the messages still there)."""
    if not uids:
        return {}
    data = _ok(imap.uid("FETCH", _uid_set(uids), f"(UID {what})"), "FETCH")
    # A response with a literal comes as (text before it, literal), then the rest of its line.
    responses: list[list[bytes]] = []
    for piece in data:
        if isinstance(piece, tuple):
            responses.append([piece[0], piece[1]])
        elif isinstance(piece, bytes) and responses and piece[:1] in (b")", b" "):
            responses[-1][0] += piece
        elif isinstance(piece, bytes):
            responses.append([piece, b""])
    found = {}
    wanted = set(uids)
    for meta, literal in responses:
        uid = UID_RE.search(meta)
        if uid is None or int(uid.group(1)) not in wanted:
            continue  # a flag change the server reported meanwhile
        flags, size = FLAGS_RE.search(meta), SIZE_RE.search(meta)
        found[int(uid.group(1))] = _Item(
            uid=int(uid.group(1)),
            flags=set(flags.group(1).decode(errors="replace").split()) if flags else set(),
            received=_internaldate(meta),
            size=int(size.group(1)) if size else None,
            literal=literal,
        )
    return found


def _internaldate(meta: bytes) -> datetime | None:
    found = INTERNALDATE_RE.search(meta)
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, zone_h, zone_m = found.groups()
    offset = timedelta(hours=int(zone_h), minutes=int(zone_m)) * (-1 if sign == b"-" else 1)
    return datetime(
        int(year),
        MONTHS.get(month.decode().title(), 1),
        int(day),
        int(hour),
        int(minute),
        int(second),
        tzinfo=timezone(offset),
    )


def _find_or_create_sent(imap: imaplib.IMAP4) -> str:
    folders = []
    for entry in _ok(imap.list('""', '"*"'), "LIST"):
        if isinstance(entry, tuple):  # the name came as a literal
            head, name = entry[0], entry[1]
        elif isinstance(entry, bytes):
            head, name = entry, None
        else:
            continue
        found = LIST_RE.match(head)
        if found is None:
            continue
        if name is None:
            name = found.group("name")
        folders.append((found.group("attrs").decode().lower().split(), _unquoted(name.decode(errors="replace"))))
    for attrs, name in folders:
        if "\\sent" in attrs:
            return name
    for _attrs, name in folders:
        if re.split(r"[/.]", name)[-1].lower() in SENT_NAMES:
            return name
    typ, data = imap.create(_quoted("Sent"))
    if typ != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise PermanentError(f"The server has no Sent folder, and refused to create one: {text}")
    return "Sent"


def folder_name(folder: str) -> str:
    """The server's name of a folder: "inbox" is INBOX; others in modified UTF-7 (RFC 3501, 5.1.3)."""
    if folder.lower() == INBOX:
        return "INBOX"
    encoded, pending = [], []

    def flush() -> None:
        if pending:
            text = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=")
            encoded.append("&" + text.replace("/", ",") + "-")
            pending.clear()

    for char in folder:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            encoded.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(encoded)


def _display(name: str) -> str:
    """A server's folder name as users read it (modified UTF-7 decoded)."""

    def decode(match: re.Match[str]) -> str:
        text = match.group(1)
        if not text:
            return "&"
        text = text.replace(",", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-16-be", errors="replace")

    return re.sub(r"&([^-]*)-", decode, name)


def _parse_state(state: str) -> tuple[int | None, int]:
    """ "uidvalidity:uid" → (uidvalidity, uid); anything else starts over (None, 0)."""
    validity, _, uid = state.partition(":")
    if validity.isdigit() and uid.isdigit():
        return int(validity), int(uid)
    if state:
        log.warning("IMAP sync state %r unreadable; fetching the folder from the start", state)
    return None, 0


def _uid_set(uids: list[int]) -> str:
    return ",".join(str(uid) for uid in sorted(set(uids)))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquoted(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text
