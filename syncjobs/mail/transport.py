"""The seam to mail servers: what the email channels ask of EWS, POP3, IMAP and SMTP.

``incoming_for(mailbox)`` and ``outgoing_for(mailbox)`` pick the transport by the mailbox's
server profile; unit tests patch these two functions, integration tests point a profile at
ewsim, Dovecot or an aiosmtpd server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

# The header (SMTP) and extended property (EWS) that carry the CRM email's id on a sent message,
# so that a send interrupted before it was recorded is found, not repeated.
CRM_ID_HEADER = "X-CRM-Email-Id"


@dataclass(frozen=True)
class Fetched:
    """One message as the server holds it."""

    source_id: str  # EWS item id, "<uidvalidity>:<uid>" for IMAP, the UIDL for POP3
    raw: bytes  # the RFC 822 message
    folder: str = "inbox"
    categories: tuple[str, ...] = ()
    received_at: datetime | None = None
    # EWS's ConversationIndex and ConversationId; other servers leave them empty (the Thread-Index
    # header, if any, is read from the message itself).
    conversation_index: bytes = b""
    conversation_id: str = ""
    # The size the server reports: a message over EMAIL_MAX_BYTES may come without ``raw``.
    size: int | None = None


@dataclass
class Batch:
    """Messages new since ``state``; store them, then keep ``state`` for the next fetch."""

    messages: list[Fetched] = field(default_factory=list)
    state: str = ""  # opaque to the caller: an EWS sync state, IMAP "uidvalidity:uid", POP3 seen UIDLs
    more: bool = False


class IncomingTransport(Protocol):
    def fetch(self, folder: str, state: str, limit: int) -> Batch:
        """The messages of ``folder`` ("inbox" or a folder id) new since ``state``, at most ``limit``."""
        ...

    def delete(self, folder: str, source_ids: list[str]) -> None:
        """Remove processed messages (forward mailboxes that delete what they processed)."""
        ...

    def close(self) -> None: ...


class OutgoingTransport(Protocol):
    def send(self, message: EmailMessage, crm_id: str) -> None:
        """Send ``message`` (it carries ``CRM_ID_HEADER``) and keep a copy where the server keeps sent mail."""
        ...

    def was_sent(self, crm_id: str, message_id: str) -> bool | None:
        """Whether a message with this CRM id was sent already: True, False, or None when the server
        cannot tell (plain SMTP). Asked before sending an email whose earlier attempt ended unrecorded."""
        ...

    def close(self) -> None: ...


def incoming_for(mailbox: Any) -> IncomingTransport:
    """The incoming transport of a mailbox's server profile: EWS, POP3 or IMAP."""
    from mailboxes.models import ProfileKind

    kind = mailbox.profile.kind
    with _readable_secrets():
        if kind == ProfileKind.POP3_SMTP:
            from syncjobs.mail.pop3 import POP3Transport

            return POP3Transport.for_mailbox(mailbox)
        if kind == ProfileKind.IMAP_SMTP:
            from syncjobs.mail.imap import IMAPTransport

            return IMAPTransport.for_mailbox(mailbox)
        from syncjobs.mail.ews import EwsIncoming

        return EwsIncoming(mailbox)


def outgoing_for(mailbox: Any) -> OutgoingTransport:
    """The outgoing transport of a mailbox's server profile: EWS, or SMTP for POP3/IMAP profiles."""
    with _readable_secrets():
        if mailbox.profile.is_exchange:
            from syncjobs.mail.ews_outgoing import EwsOutgoing

            return EwsOutgoing(mailbox)
        from syncjobs.mail.smtp import SMTPTransport

        return SMTPTransport.for_mailbox(mailbox)


@contextmanager
def _readable_secrets() -> Iterator[None]:
    """A stored password that cannot be decrypted (the key changed) is a permanent error."""
    from crmsync_portal.lib.crypto import DecryptionError
    from syncjobs.errors import PermanentError

    try:
        yield
    except DecryptionError as error:
        raise PermanentError(f"{error} Enter the password again on the server profile or the mailbox.") from error
