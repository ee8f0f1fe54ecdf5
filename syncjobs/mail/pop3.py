"""Incoming email over POP3 (poplib): the inbox, each message known by its UIDL.

The sync state is the JSON list of the UIDLs already fetched, bounded: only those still on the
server are kept, so it never grows beyond the mailbox. A session sees the mailbox as it was when
it logged in (one session per run). POP3 has no folders, marks nothing read and tells no arrival
time: a message's is read from its newest Received header (else its Date). A message over
EMAIL_MAX_BYTES is fetched with its header only (TOP), for the tracker to record why. Deleting is
DELE, which the server carries out when the session ends (QUIT).
"""

from __future__ import annotations

import json
import logging
import poplib
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from typing import Any

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

INBOX = "inbox"
# poplib refuses lines over 2,048 bytes; real mail has longer ones (RFC 5322's 998 is often ignored).
MAX_LINE = 1 << 20


class _LongLines:
    """poplib's line reader with a larger limit (the stdlib's is a module constant)."""

    file: Any

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise poplib.error_proto("line too long")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class _POP3(_LongLines, poplib.POP3):
    pass


class _POP3_SSL(_LongLines, poplib.POP3_SSL):
    pass


def _protocol_error(error: Exception) -> SyncError | None:
    if isinstance(error, poplib.error_proto):
        return TransientError(f"The POP3 server answered: {words(error)}")
    return None


class POP3Transport:
    """An IncomingTransport over POP3: one session, opened on first use, for the transport's life."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._pop: poplib.POP3 | None = None

    @classmethod
    def for_mailbox(cls, mailbox: Mailbox) -> POP3Transport:
        return cls(incoming_endpoint(mailbox))

    def check(self) -> None:
        """Log in (Test & Enable)."""
        self._session()

    def _session(self) -> poplib.POP3:
        if self._pop is not None:
            return self._pop
        endpoint = self.endpoint
        with translated(endpoint, _protocol_error):
            if endpoint.implicit_tls:
                pop: poplib.POP3 = _POP3_SSL(
                    endpoint.host, endpoint.port, timeout=endpoint.timeout, context=tls_context()
                )
            else:
                pop = _POP3(endpoint.host, endpoint.port, timeout=endpoint.timeout)
            try:
                if endpoint.starttls:
                    if "STLS" not in _capabilities(pop):
                        raise no_starttls(endpoint)
                    pop.stls(context=tls_context())
                try:
                    pop.user(endpoint.username)
                    pop.pass_(endpoint.password)
                except poplib.error_proto as error:
                    raise refused_credentials(error) from error
            except BaseException:
                quietly(pop.close)
                raise
        self._pop = pop
        return pop

    def _run(self, work: Any) -> Any:
        """Do ``work(session)``; a failed session is dropped (the next call opens another)."""
        pop = self._session()
        try:
            with translated(self.endpoint, _protocol_error):
                return work(pop)
        except BaseException:
            self._pop = None
            quietly(pop.close)
            raise

    def fetch(self, folder: str, state: str, limit: int) -> Batch:
        """The messages not fetched before, oldest first, at most ``limit``."""
        _only_inbox(folder)
        seen = _seen(state)

        def work(pop: poplib.POP3) -> Batch:
            listing = _uidl(pop)  # UIDL → message number, in the server's order
            new = [uidl for uidl in listing if uidl not in seen]
            sizes = _sizes(pop) if new else {}
            messages = []
            for uidl in new[:limit]:
                number = listing[uidl]
                size = sizes.get(number)
                # One over the size limit comes with its header only: the tracker records why.
                big = size is not None and size > max_bytes()
                _response, lines, _octets = pop.top(number, 0) if big else pop.retr(number)
                raw = b"\r\n".join(lines) + b"\r\n"
                messages.append(Fetched(source_id=uidl, raw=raw, folder=INBOX, received_at=received_at(raw), size=size))
            kept = (seen & listing.keys()) | {m.source_id for m in messages}
            return Batch(messages=messages, state=json.dumps(sorted(kept)), more=len(new) > limit)

        return self._run(work)

    def delete(self, folder: str, source_ids: list[str]) -> None:
        """Delete messages by UIDL (those gone already are skipped); done when the session ends."""
        _only_inbox(folder)
        if not source_ids:
            return

        def work(pop: poplib.POP3) -> None:
            listing = _uidl(pop)
            for uidl in source_ids:
                if uidl in listing:
                    pop.dele(listing[uidl])
            pop.quit()  # the server deletes on QUIT (the UPDATE state)

        self._run(work)
        self._pop = None

    def close(self) -> None:
        if self._pop is not None:
            quietly(self._pop.quit)
            self._pop = None


def _only_inbox(folder: str) -> None:
    if folder != INBOX:
        raise PermanentError(f"POP3 reaches the inbox only: the folder “{folder}” cannot be read over POP3.")


def _capabilities(pop: poplib.POP3) -> dict[str, Any]:
    try:
        return pop.capa()
    except poplib.error_proto:  # a server without CAPA has no STLS either
        return {}


def _uidl(pop: poplib.POP3) -> dict[str, int]:
    _response, lines, _octets = pop.uidl()
    listing: dict[str, int] = {}
    for line in lines:
        number, _, uidl = line.decode("ascii", errors="replace").partition(" ")
        listing[uidl.strip()] = int(number)
    return listing


def _sizes(pop: poplib.POP3) -> dict[int, int]:
    _response, lines, _octets = pop.list()
    sizes = {}
    for line in lines:
        number, _, size = line.decode("ascii", errors="replace").partition(" ")
        if number.isdigit() and size.strip().isdigit():
            sizes[int(number)] = int(size)
    return sizes


def received_at(raw: bytes) -> datetime | None:
    """When the message arrived: the date of its newest Received header, else its Date header.

    POP3 tells no arrival time; the mailbox's "process email received after" mark needs one.
    """
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    hops = [str(value).rpartition(";")[2] for value in headers.get_all("Received", [])]
    for text in [*hops[:1], str(headers.get("Date", ""))]:
        try:
            found = parsedate_to_datetime(text.strip())
        except (TypeError, ValueError, IndexError):
            continue
        if found.tzinfo is None:
            found = found.replace(tzinfo=UTC)
        return found
    return None


def _seen(state: str) -> set[str]:
    """The UIDLs fetched before; an unreadable state starts over (tracking skips what it has)."""
    if not state:
        return set()
    try:
        seen = json.loads(state)
    except ValueError:
        seen = None
    if not isinstance(seen, list):
        log.warning("POP3 sync state unreadable; fetching the inbox from the start")
        return set()
    return {str(uidl) for uidl in seen}
