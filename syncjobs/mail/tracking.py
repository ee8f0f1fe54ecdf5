"""Incoming tracking: which messages become CRM emails, and what they belong to (DOMAIN.md).

A message is tracked, in this order of reasons (``Email.tracked_by`` keeps the one that applied):

1. it lies in a tracked folder (``TrackedFolder``): "regarding" is the folder's record;
2. it correlates with a CRM email: its In-Reply-To (or References) names a CRM email's
   Message-ID, else its subject carries a tracking token ``CRM:<number>``, else its conversation
   index (the first 22 bytes name the thread) or conversation id matches; "regarding" is copied
   from the correlated email. Any rule but "none" tracks a correlated message;
3. it has the organization's tracked category (whatever the rule);
4. it arrived in a queue's mailbox (unless the rule is "none"): it becomes a queue item too;
5. the mailbox's tracking rule: all; from CRM leads, contacts or accounts; from email-enabled
   records (those, members of the organization and its queue mailboxes). "Replies to CRM email"
   tracks correlated messages only.

One email per Message-ID in the organization, whatever the number of mailboxes and workers:
the database refuses a second row, and the loser of that race adds its receipt to the winner's
email. A message whose email exists already (another mailbox got it, it was moved back into the
Inbox, a run is replayed after a crash) only adds the mailbox's receipt and recipient.

``Tracker.track_batch`` reads what a page of messages needs in a fixed number of queries (the
emails they may correlate with, the addresses they carry), so an untracked message costs no
query and a tracked one a fixed few (its insert, its recipients, its receipt).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, OperationalError, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from audit.log import Actor, record
from crm.email_access import visible_emails
from crm.models import (
    Account,
    Contact,
    Email,
    EmailDirection,
    EmailReceipt,
    EmailRecipient,
    EmailStatus,
    IgnoredMessage,
    Lead,
    QueueItem,
    RecipientKind,
    TrackedBy,
    TrackedFolder,
)
from mailboxes.models import Mailbox, OwnerType, TrackingRule
from syncjobs.errors import PermanentError
from syncjobs.mail.parse import BadMessage, Parsed, clean, over_limit, parse, thread_key, tracking_number
from syncjobs.mail.transport import Fetched

log = logging.getLogger(__name__)

TRACKED, EXISTING, SKIPPED, IGNORED = "tracked", "existing", "skipped", "ignored"
REGARDING = ("regarding_account_id", "regarding_contact_id", "regarding_lead_id", "regarding_appointment_id")
# SQLSTATE classes of database errors that pass (see ``_passing``).
PASSING_SQLSTATES = ("08", "40", "53", "57", "55P03")
CORRELATION_FIELDS = ("id", "message_id", "tracking_number", "conversation_id", "deleted_at", *REGARDING)


@dataclass
class Outcome:
    """What became of one message: tracked (a new email), existing (a receipt on an email the
    CRM had), skipped (not tracked: rule, or received before the mark) or ignored (bad input)."""

    status: str
    email: Email | None = None
    reason: str = ""


@dataclass
class Book:
    """The CRM records and members whose addresses a page of messages carries (lower case)."""

    contacts: dict[str, Any] = field(default_factory=dict)
    leads: dict[str, Any] = field(default_factory=dict)
    accounts: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    queues: set[str] = field(default_factory=set)

    def crm_record(self, address: str) -> bool:
        return address in self.contacts or address in self.leads or address in self.accounts

    def email_enabled(self, address: str) -> bool:
        return self.crm_record(address) or address in self.users or address in self.queues

    def recipient(self, email: Email, kind: str, address: str, name: str = "") -> EmailRecipient:
        """An EmailRecipient row of ``email`` for a lower-case address, linked to what it resolves to."""
        return EmailRecipient(
            email=email,
            kind=kind,
            address=address[:320],
            name=name[:255],
            contact_id=self.contacts.get(address),
            lead_id=self.leads.get(address),
            account_id=self.accounts.get(address),
            user_id=self.users.get(address),
        )


def read_book(organization: Any, addresses: Iterable[str]) -> Book:
    """The organization's contacts, leads, accounts (the oldest for an address), active members and
    queue mailboxes with these addresses, in five queries; addresses compare case-insensitively.

    Incoming tracking resolves a message's parties with it, outgoing email its recipients."""
    book = Book()
    wanted = {a.lower() for a in addresses if a}
    if not wanted:
        return book
    for model, found in ((Contact, book.contacts), (Lead, book.leads), (Account, book.accounts)):
        rows = (
            model.objects.filter(organization=organization)
            .annotate(address=Lower("email"))
            .filter(address__in=wanted)
            .order_by("created_at")
            .values_list("address", "pk")
        )
        for address, pk in rows:
            found.setdefault(address, pk)
    users = (
        get_user_model()
        .objects.filter(memberships__organization=organization, is_active=True)
        .annotate(address=Lower("email"))
        .filter(address__in=wanted)
        .order_by("pk")
        .values_list("address", "pk")
    )
    for address, pk in users:
        book.users.setdefault(address, pk)
    queues = Mailbox.objects.filter(organization=organization, owner_type=OwnerType.QUEUE).annotate(a=Lower("address"))
    book.queues = set(queues.filter(a__in=wanted).values_list("a", flat=True))
    return book


@dataclass
class Page:
    """Correlation candidates of a page of messages, read in a few queries."""

    by_message_id: dict[str, Email] = field(default_factory=dict)
    by_number: dict[int, Email] = field(default_factory=dict)
    by_thread: dict[str, Email] = field(default_factory=dict)
    receipts: dict[Any, EmailReceipt] = field(default_factory=dict)  # email id -> this mailbox's receipt
    book: Book = field(default_factory=Book)


def read(mailbox: Mailbox, fetched: Fetched, after: datetime | None) -> Parsed | Outcome:
    """A message fetched from ``mailbox`` parsed, or why not: skipped (received before ``after``,
    the mark of the mailbox whose rules apply), or ignored (over the size limit, so passed on
    without its content; not a message) and then recorded as an IgnoredMessage of ``mailbox``."""
    if after is not None and fetched.received_at is not None and fetched.received_at < after:
        return Outcome(SKIPPED, reason="received before the mailbox processes email")
    try:
        if fetched.size is not None and len(fetched.raw) < fetched.size and (problem := over_limit(fetched.size)):
            raise BadMessage(problem)
        return parse(fetched.raw)
    except BadMessage as error:
        ignore(mailbox, fetched, error.reason)
        return Outcome(IGNORED, reason=error.reason)


def ignore(mailbox: Mailbox, fetched: Fetched, reason: str, parsed: Parsed | None = None) -> None:
    """Record a message of ``mailbox`` that cannot be tracked (or forwarded), once per server item."""
    IgnoredMessage.objects.get_or_create(
        mailbox=mailbox,
        source_id=fetched.source_id[:512],
        defaults={
            "reason": reason,
            "message_id": parsed.message_id[:998] if parsed else "",
            "subject": parsed.subject[:998] if parsed else "",
        },
    )


def track(mailbox: Mailbox, fetched: Fetched, *, on_behalf_of: Mailbox | None = None) -> Email | None:
    """Track one message fetched from ``mailbox``; the email, or None when it was not tracked.

    ``on_behalf_of`` (forward mailboxes): the mailbox whose tracking rule, owner and receipt
    apply; ``mailbox`` is where the message was fetched (a bad message is recorded there).
    """
    return Tracker(mailbox, on_behalf_of=on_behalf_of).track_batch([fetched])[0].email


class Tracker:
    """Tracks the messages of one mailbox, a page at a time."""

    def __init__(self, mailbox: Mailbox, *, on_behalf_of: Mailbox | None = None) -> None:
        self.source = mailbox
        self.mailbox = on_behalf_of or mailbox
        self.organization = self.mailbox.organization
        self.owner = self.mailbox.email_owner()
        if self.owner is None:
            raise PermanentError(
                f"The queue mailbox {self.mailbox} has no owner for its email: its organization has no administrator."
            )
        self.after = self.mailbox.email_received_after()
        self.rule = self.mailbox.tracking_rule
        self.category = self.organization.tracked_category.strip().lower()
        self.is_queue = self.mailbox.owner_type == OwnerType.QUEUE
        self._folders: dict[str, TrackedFolder] | None = None

    @property
    def folders(self) -> dict[str, TrackedFolder]:
        """The mailbox's tracked folders by folder id (read once)."""
        if self._folders is None:
            # Folders are the fetching mailbox's own: a forwarded message lies in no folder of the recipient.
            rows = TrackedFolder.objects.filter(mailbox=self.mailbox) if self.source == self.mailbox else []
            self._folders = {tf.folder_id: tf for tf in rows if tf.folder_id}
        return self._folders

    # The page ---------------------------------------------------------------------------------

    def track_batch(self, messages: Iterable[Fetched]) -> list[Outcome]:
        """Each message's outcome, in order. Each tracked message is stored in its own transaction:
        a crash leaves the stored ones stored and a replay adds nothing twice. A message the
        database refuses becomes an IgnoredMessage; only an error that passes (a lost connection,
        a deadlock) fails the page."""
        parsed: list[tuple[Fetched, Parsed | Outcome]] = [(f, read(self.source, f, self.after)) for f in messages]
        good = [(f, p) for f, p in parsed if isinstance(p, Parsed)]
        page = self._read_page([p for _, p in good], {_key(f, p) for f, p in good} - {""})
        outcomes = []
        for fetched, p in parsed:
            if isinstance(p, Parsed):
                try:
                    p = self._track_one(page, fetched, p)
                except DatabaseError as error:
                    if _passing(error):
                        raise  # the run fails and is retried: the message is not the cause
                    # A message the database refuses (its writes were undone with their atomic
                    # block): recorded with the reason, the others go on.
                    ignore(self.source, fetched, f"The database refused the message: {error}", p)
                    p = Outcome(IGNORED, reason=str(error))
            outcomes.append(p)
        return outcomes

    def _read_page(self, messages: list[Parsed], threads: set[str]) -> Page:
        page = Page()
        if not messages:
            return page
        org = self.organization
        ids = {m.message_id for m in messages} | {r for m in messages for r in m.reply_ids}
        candidates = Email.all_objects.filter(organization=org).only(*CORRELATION_FIELDS)
        page.by_message_id = {e.message_id: e for e in candidates.filter(message_id__in=ids)}
        numbers = {n for m in messages if (n := tracking_number(m.subject)) is not None}
        if numbers:
            page.by_number = {e.tracking_number: e for e in candidates.filter(tracking_number__in=numbers)}
        if threads:
            # A thread's oldest live email: a deleted one must not stand for the thread (while the
            # Message-ID lookup above keeps deleted emails, so that they are not tracked again).
            live = candidates.filter(conversation_id__in=threads, deleted_at__isnull=True)
            for found in live.order_by("created_at"):
                page.by_thread.setdefault(found.conversation_id, found)
        own_ids = {m.message_id for m in messages}
        own = [e.pk for mid, e in page.by_message_id.items() if mid in own_ids]
        if own:
            page.receipts = {r.email_id: r for r in EmailReceipt.objects.filter(mailbox=self.mailbox, email_id__in=own)}
        page.book = read_book(
            self.organization, {a.address for m in messages for a in _parties(m)} | {self.mailbox.address}
        )
        return page

    # One message ------------------------------------------------------------------------------

    def _track_one(self, page: Page, fetched: Fetched, parsed: Parsed) -> Outcome:
        existing = page.by_message_id.get(parsed.message_id)
        if existing is not None:
            return self._existing(page, existing, fetched, parsed)
        key = _key(fetched, parsed)
        correlated, how = self._correlate(page, parsed, key)
        reason, regarding = self._reason(page, fetched, parsed, correlated, how)
        if reason is None:
            return Outcome(SKIPPED, reason="the tracking rule does not track it")
        if regarding is None and correlated is not None:
            regarding = {name: getattr(correlated, name) for name in REGARDING}
        try:
            email = self._store(fetched, parsed, key, reason, regarding or {}, page.book)
        except IntegrityError:
            # Another worker stored this Message-ID meanwhile: add this mailbox to its email.
            winner = Email.all_objects.filter(organization=self.organization, message_id=parsed.message_id).first()
            if winner is None:
                raise
            return self._existing(page, winner, fetched, parsed)
        page.by_message_id[parsed.message_id] = email
        page.receipts[email.pk] = email._receipt  # type: ignore[attr-defined]
        if key:
            page.by_thread.setdefault(key, email)
        return Outcome(TRACKED, email)

    def _correlate(self, page: Page, parsed: Parsed, key: str) -> tuple[Email | None, str]:
        for reply_id in parsed.reply_ids:
            found = page.by_message_id.get(reply_id)
            if found is not None and found.deleted_at is None:
                return found, TrackedBy.IN_REPLY_TO
        number = tracking_number(parsed.subject)
        found = page.by_number.get(number) if number is not None else None
        if found is not None and found.deleted_at is None:
            return found, TrackedBy.TRACKING_TOKEN
        found = page.by_thread.get(key) if key else None
        if found is not None and found.deleted_at is None:
            return found, TrackedBy.CONVERSATION_INDEX
        return None, ""

    def _reason(
        self, page: Page, fetched: Fetched, parsed: Parsed, correlated: Email | None, how: str
    ) -> tuple[str | None, dict[str, Any] | None]:
        """Why the message is tracked (a TrackedBy value) and the "regarding" a folder imposes;
        (None, None) when it is not tracked."""
        folder = self.folders.get(fetched.folder)
        if folder is not None:
            return TrackedBy.FOLDER, {
                "regarding_account_id": folder.regarding_account_id,
                "regarding_contact_id": folder.regarding_contact_id,
                "regarding_lead_id": folder.regarding_lead_id,
                "regarding_appointment_id": None,
            }
        if correlated is not None and self.rule != TrackingRule.NONE:
            return how, None
        if self.category and any(c.strip().lower() == self.category for c in fetched.categories):
            return TrackedBy.CATEGORY, None
        if self.rule == TrackingRule.NONE:
            return None, None
        if self.is_queue:
            return TrackedBy.QUEUE, None
        sender = parsed.sender.address if parsed.sender else ""
        if self.rule == TrackingRule.ALL:
            return TrackedBy.RULE_ALL, None
        if self.rule == TrackingRule.FROM_CRM_RECORDS and page.book.crm_record(sender):
            return TrackedBy.RULE_CRM_RECORDS, None
        if self.rule == TrackingRule.FROM_EMAIL_ENABLED and page.book.email_enabled(sender):
            return TrackedBy.RULE_EMAIL_ENABLED, None
        return None, None

    @transaction.atomic
    def _store(
        self, fetched: Fetched, parsed: Parsed, key: str, reason: str, regarding: dict[str, Any], book: Book
    ) -> Email:
        note = "\n".join(parsed.notes)
        email = Email(
            organization=self.organization,
            owner=self.owner,
            message_id=parsed.message_id[:998],
            in_reply_to=parsed.in_reply_to[:998],
            references=" ".join(parsed.references),
            conversation_id=key,
            conversation_index=_b64(fetched.conversation_index or parsed.thread_index)[:1024],
            subject=parsed.subject[:998],
            sender=parsed.sender.address if parsed.sender else "",
            sender_name=parsed.sender.name if parsed.sender else "",
            to=[{"address": a.address, "name": a.name} for a in parsed.to],
            cc=[{"address": a.address, "name": a.name} for a in parsed.cc],
            body_text=parsed.body_text,
            body_html=parsed.body_html,
            sent_at=parsed.sent_at,
            received_at=fetched.received_at or timezone.now(),
            direction=EmailDirection.INCOMING,
            status=EmailStatus.RECEIVED,
            status_reason=note,
            mailbox=self.mailbox,
            tracked_by=reason,
            **regarding,
        )
        email.save(force_insert=True)
        recipients = _recipients(email, parsed, book)
        if self.mailbox.address and not any(r.address == self.mailbox.address.lower() for r in recipients):
            recipients.append(book.recipient(email, RecipientKind.TO, self.mailbox.address.lower()))
        EmailRecipient.objects.bulk_create(recipients)
        email._receipt = EmailReceipt.objects.create(  # type: ignore[attr-defined]
            email=email,
            mailbox=self.mailbox,
            source_id=fetched.source_id[:512],
            folder=fetched.folder[:255],
            received_at=email.received_at,
        )
        if self.is_queue:
            QueueItem.objects.create(queue=self.mailbox, email=email)
        return email

    def _existing(self, page: Page, email: Email, fetched: Fetched, parsed: Parsed) -> Outcome:
        """The CRM has this message already: this mailbox's receipt (and recipient, and queue item)."""
        receipt = page.receipts.get(email.pk)
        if receipt is not None:
            # Moved: the server gave it a new id. A forwarded copy has none (its id is the forward
            # mailbox's): the receipt keeps the real one.
            if fetched.source_id and receipt.source_id != fetched.source_id[:512]:
                receipt.source_id, receipt.folder = fetched.source_id[:512], fetched.folder[:255]
                with transaction.atomic():
                    receipt.save(update_fields=["source_id", "folder"])
            return Outcome(EXISTING, email, "the CRM has this message already")
        with transaction.atomic():
            receipt, _ = EmailReceipt.objects.get_or_create(
                email=email,
                mailbox=self.mailbox,
                defaults={
                    "source_id": fetched.source_id[:512],
                    "folder": fetched.folder[:255],
                    "received_at": fetched.received_at or timezone.now(),
                },
            )
            address = self.mailbox.address.lower()
            if address:
                EmailRecipient.objects.bulk_create(
                    [page.book.recipient(email, RecipientKind.TO, address)], ignore_conflicts=True
                )
            if self.is_queue:
                QueueItem.objects.get_or_create(queue=self.mailbox, email=email)
        page.receipts[email.pk] = receipt
        return Outcome(EXISTING, email, "the CRM had this message from another mailbox")


def _passing(error: DatabaseError) -> bool:
    """Whether a database error is one that passes (connection, deadlock or serialization failure,
    resources, shutdown, lock wait; SQLite's locked database) rather than one the message causes."""
    state = getattr(error.__cause__, "sqlstate", None) or ""
    return state.startswith(PASSING_SQLSTATES) if state else isinstance(error, OperationalError)


def _key(fetched: Fetched, parsed: Parsed) -> str:
    """The conversation an incoming message belongs to (``Email.conversation_id``): the first 22
    bytes of its conversation index (EWS's, else the Thread-Index header), else EWS's
    ConversationId."""
    return thread_key(fetched.conversation_index) or parsed.thread_key or fetched.conversation_id[:512]


def _parties(parsed: Parsed) -> list[Any]:
    return ([parsed.sender] if parsed.sender else []) + list(parsed.to) + list(parsed.cc)


def _recipients(email: Email, parsed: Parsed, book: Book) -> list[EmailRecipient]:
    rows: dict[tuple[str, str], EmailRecipient] = {}
    parties = [(RecipientKind.FROM, parsed.sender)] if parsed.sender else []
    parties += [(RecipientKind.TO, a) for a in parsed.to] + [(RecipientKind.CC, a) for a in parsed.cc]
    for kind, address in parties:
        rows.setdefault((kind, address.address), book.recipient(email, kind, address.address, address.name))
    return list(rows.values())


def _b64(index: bytes) -> str:
    return base64.b64encode(index).decode() if index else ""


# The "track" action --------------------------------------------------------------------------


def conversation_of(email: Email) -> Q:
    """The emails of the conversation an email belongs to: the same thread, or replies either way."""
    q = Q(pk=email.pk)
    if email.conversation_id:
        q |= Q(conversation_id=email.conversation_id)
    if email.message_id:
        q |= Q(in_reply_to=email.message_id) | Q(references__contains=email.message_id)
    if email.in_reply_to:
        q |= Q(message_id=email.in_reply_to)
    return q


def track_conversation(email: Email, actor: Actor) -> int:
    """Track the conversation of a CRM email: its emails without a "regarding" take this email's,
    and messages of the conversation that arrive later correlate with it (by In-Reply-To, token
    or conversation index). Audited as "email.conversation_tracked"; returns how many emails changed.

    Only the emails the acting user may see change (``visible_emails``): a plain user who sees one
    email of a thread does not decide for a colleague's private emails in it. The system changes all.
    """
    regarding = {name: getattr(email, name) for name in REGARDING}
    emails = visible_emails(actor.user) if actor.user is not None else Email.objects.all()
    with transaction.atomic():
        if not email.tracked_by:
            Email.objects.filter(pk=email.pk).update(tracked_by=TrackedBy.MANUAL)
            email.tracked_by = TrackedBy.MANUAL
        changed = 0
        if any(regarding.values()):
            others = (
                emails.filter(organization_id=email.organization_id)
                .filter(conversation_of(email))
                .exclude(pk=email.pk)
                .filter(**{name: None for name in REGARDING})
            )
            changed = others.update(**regarding, updated_at=timezone.now(), version=F("version") + 1)
        record(
            actor,
            "email.conversation_tracked",
            email,
            organization=email.organization,
            changes={"subject": ["", clean(email.subject)], "emails": ["", str(changed)]},
        )
    return changed
