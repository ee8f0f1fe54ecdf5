"""RFC 822 messages as the portal stores them: headers, addresses, bodies, never raw HTML.

``parse(raw)`` returns a ``Parsed`` or raises ``BadMessage(reason)`` for a message that cannot
be an email activity (empty, too large, no headers at all). Anything less serious is repaired
and said in ``notes``: an unknown or wrong charset is decoded with replacement characters, HTML
is sanitized with nh3 (scripts, event handlers and styles removed), a missing Message-ID is
made from the message's content so that a replay finds the same one (so is one the CRM cannot
index: not ASCII, or longer than 250 characters).
"""

from __future__ import annotations

import base64
import binascii
import email
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime

import nh3
from django.conf import settings

# The first 22 bytes of a conversation index (Thread-Index) name the thread; each reply adds 5.
THREAD_KEY_BYTES = 22
# A Message-ID longer than this, or not ASCII, is replaced by one made from the content: the
# unique index on Email.message_id must take it (PostgreSQL's btree refuses entries over 2,704 bytes).
MAX_MESSAGE_ID = 250
TOKEN_PREFIX = "CRM:"
# The tracking token in a subject: the prefix in any case and 1 to 18 ASCII digits (no other
# digits: "²" or "٢" are no number); the blanks before it go with it when it is removed.
TOKEN_RE = re.compile(rf"\s*{re.escape(TOKEN_PREFIX)}(\d{{1,18}})(?!\d)", re.IGNORECASE | re.ASCII)
DAMAGE = ("MissingHeaderBodySeparatorDefect", "NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect")
ACTIVE = re.compile(r"<\s*(script|iframe|object|embed)\b|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


class BadMessage(Exception):
    """A message that cannot be tracked; ``reason`` says why in plain words (IgnoredMessage.reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Address:
    address: str  # lower case
    name: str = ""


@dataclass(frozen=True)
class Parsed:
    message_id: str  # "<...>" as in the header, or one made from the content (see notes)
    subject: str = ""
    sender: Address | None = None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    sent_at: datetime | None = None
    body_text: str = ""
    body_html: str = ""  # sanitized
    thread_index: bytes = b""  # the Thread-Index header, decoded
    forwarded: tuple[bytes, ...] = ()  # attached messages (message/rfc822), raw
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def thread_key(self) -> str:
        return thread_key(self.thread_index)

    @property
    def reply_ids(self) -> list[str]:
        """In-Reply-To, then References from the newest: the messages this one answers."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        return ids + [r for r in reversed(self.references) if r not in ids]


def thread_key(index: bytes) -> str:
    """The thread a conversation index belongs to (its first 22 bytes, hex), "" without one."""
    return index[:THREAD_KEY_BYTES].hex() if len(index) >= THREAD_KEY_BYTES else ""


def max_bytes() -> int:
    return int(getattr(settings, "EMAIL_MAX_BYTES", 25 * 1024 * 1024))


def over_limit(size: int | None) -> str:
    """Why a message of ``size`` bytes is not taken ("" when it is within ``EMAIL_MAX_BYTES``)."""
    limit = max_bytes()
    return f"The message is {size:,} bytes, more than the limit of {limit:,} bytes." if (size or 0) > limit else ""


def parse(raw: bytes) -> Parsed:
    """The message's parts the CRM keeps (see the module's docstring)."""
    if problem := over_limit(len(raw)):
        raise BadMessage(problem)
    if not raw.strip():
        raise BadMessage("The message is empty.")
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
        return _parse(msg, raw)
    except BadMessage:
        raise
    except Exception as error:  # the email package raises many kinds on broken input
        raise BadMessage(f"The message is malformed MIME ({type(error).__name__}: {clean(str(error))}).") from error


def _parse(msg: EmailMessage, raw: bytes) -> Parsed:
    if not any(msg[h] is not None for h in ("From", "To", "Subject", "Message-ID", "Date")):
        raise BadMessage("The message is malformed MIME: it has none of From, To, Subject, Message-ID and Date.")
    notes: list[str] = []
    if any(type(d).__name__ in DAMAGE for d in msg.defects):
        notes.append("The message's MIME structure is damaged; what could be read was kept.")
    message_id = _message_id(msg["Message-ID"])
    if not message_id:
        message_id = f"<{hashlib.sha256(raw).hexdigest()[:40]}@crmsync.invalid>"
        notes.append(
            "The message has no Message-ID; one was made from its content."
            if msg["Message-ID"] is None
            else f"The message's Message-ID is not plain ASCII of at most {MAX_MESSAGE_ID} characters; "
            "one was made from its content."
        )
    senders = _addresses(msg, "From") or _addresses(msg, "Sender")
    text, html_body = _bodies(msg, notes)
    return Parsed(
        message_id=message_id,
        subject=_header(msg, "Subject"),
        sender=senders[0] if senders else None,
        to=tuple(_addresses(msg, "To")),
        cc=tuple(_addresses(msg, "Cc")),
        in_reply_to=_message_id(msg["In-Reply-To"]),
        references=tuple(_ids(msg["References"])),
        sent_at=_date(msg),
        body_text=text,
        body_html=html_body,
        thread_index=_thread_index(msg),
        forwarded=tuple(_forwarded(msg)),
        notes=tuple(notes),
    )


def clean(text: str) -> str:
    """Text the database takes: undecodable bytes as replacement characters, no NUL."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "")


def _header(msg: Message, name: str) -> str:
    try:
        value = msg[name]
    except Exception:  # a header the strict parser refuses: its raw text
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return " ".join(clean(str(value)).split()) if value is not None else ""


def _ids(value: object) -> list[str]:
    """The <...> ids of a Message-ID, In-Reply-To or References header."""
    if value is None:
        return []
    text = clean(str(value))
    found, rest = [], text
    while "<" in rest and ">" in rest.split("<", 1)[1]:
        inner, rest = rest.split("<", 1)[1].split(">", 1)
        if inner.strip():
            found.append(f"<{inner.strip()}>")
    if not found and text.strip() and " " not in text.strip():
        found.append(f"<{text.strip().strip('<>')}>")  # an id without its brackets
    return found


def _message_id(value: object) -> str:
    """The header's first id if the CRM can index it (ASCII, at most ``MAX_MESSAGE_ID`` characters), else ""."""
    ids = _ids(value)
    return ids[0] if ids and ids[0].isascii() and len(ids[0]) <= MAX_MESSAGE_ID else ""


def _addresses(msg: Message, name: str) -> list[Address]:
    try:
        header = msg[name]
        found = getattr(header, "addresses", ())
        parsed = [(a.display_name, a.addr_spec) for a in found if isinstance(a, HeaderAddress)]
    except Exception:
        parsed = []
    if not parsed and msg.get_all(name):  # the strict parser gave up: try the lenient one
        parsed = getaddresses([clean(str(v)) for v in msg.get_all(name)])
    seen: dict[str, Address] = {}
    for display, spec in parsed:
        spec = clean(spec).strip().lower()
        if "@" in spec and spec not in seen:
            seen[spec] = Address(spec[:320], clean(display or "").strip()[:255])
    return list(seen.values())


def _date(msg: Message) -> datetime | None:
    try:
        value = getattr(msg["Date"], "datetime", None)
        if value is None and msg.get("Date"):
            value = parsedate_to_datetime(str(msg.get("Date")))
    except (TypeError, ValueError, IndexError):
        return None
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _thread_index(msg: Message) -> bytes:
    value = msg.get("Thread-Index")
    if not value:
        return b""
    try:
        return base64.b64decode("".join(str(value).split()), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _decode(part: Message, notes: list[str]) -> str:
    """A text part's content. An unknown charset, or bytes that are not in the declared one, are
    decoded as UTF-8 if they are UTF-8, else with replacement characters; the note says so."""
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    if not isinstance(payload, bytes):
        return clean(str(payload))
    charset = part.get_content_charset() or "us-ascii"
    try:
        return clean(payload.decode(charset))
    except LookupError:
        problem = f"the unknown charset “{clean(charset)}”"
    except UnicodeDecodeError:
        problem = f"text that is not valid {clean(charset)}"
    try:
        text = payload.decode("utf-8")
        notes.append(f"The message declares {problem}; it was read as UTF-8.")
    except UnicodeDecodeError:
        fallback = charset
        try:
            "".encode(fallback)
        except LookupError:
            fallback = "utf-8"
        text = payload.decode(fallback, "replace")
        notes.append(f"The message declares {problem}; characters that could not be read were replaced.")
    return clean(text)


def _bodies(msg: EmailMessage, notes: list[str]) -> tuple[str, str]:
    """(plain text, sanitized HTML): the first text/plain and text/html parts that are not attachments."""
    try:
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
    except Exception:
        text_part = html_part = None
        notes.append("The message's body parts could not be told apart; no body was kept.")
    text = _decode(text_part, notes) if text_part is not None else ""
    html_body = ""
    if html_part is not None:
        raw_html = _decode(html_part, notes)
        html_body = sanitize(raw_html)
        if _has_active_content(raw_html):
            notes.append("Scripts and other active content were removed from the HTML body.")
        if not text:
            text = html_to_text(raw_html)
    return text, html_body


def sanitize(raw_html: str) -> str:
    """HTML safe to show inside a page: nh3's allow-list (no scripts, handlers or styles)."""
    return nh3.clean(raw_html, link_rel="noopener noreferrer nofollow")


def html_to_text(raw_html: str) -> str:
    stripped = nh3.clean(raw_html, tags=set(), clean_content_tags={"script", "style", "head", "title"})
    lines = [" ".join(line.split()) for line in html.unescape(stripped).splitlines()]
    return "\n".join(line for line in lines if line).strip()


def _has_active_content(raw_html: str) -> bool:
    return ACTIVE.search(raw_html) is not None


def _forwarded(msg: EmailMessage) -> list[bytes]:
    found = []
    for part in msg.iter_attachments() if msg.is_multipart() else ():
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                found.append(inner[0].as_bytes(policy=policy.SMTP))
    return found


def tracking_number(subject: str) -> int | None:
    """The number of the first tracking token ``CRM:<number>`` in a subject, if it has one."""
    found = TOKEN_RE.search(subject)
    return int(found.group(1)) if found else None
