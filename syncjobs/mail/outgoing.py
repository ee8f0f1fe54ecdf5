"""The outgoing channel's work: send a mailbox's pending CRM emails, each exactly once.

An email goes pending_send → sending → sent (or failed, with the reason). The row is the job:

1. **Claim** each due email with a conditional UPDATE pending_send → sending that must change
   exactly one row (``send_attempts`` + 1), so that two workers never send the same email.
2. **Build** the message once: a Message-ID (stored on the email before anything is sent), the
   tracking token ``CRM:<number>`` at the end of the subject, and the email's id in
   ``CRM_ID_HEADER`` (over EWS the transport also stamps it in an extended property).
3. **Send**, then record sent (``sent_at``), the sender's receipt and the resolved recipients.
4. An email found in "sending" when a run starts was claimed by an earlier run that stopped
   between sending and recording. It is never simply sent again: the server is asked whether it
   sent it (``transport.was_sent``). Yes: recorded as sent. No: sent. Cannot tell (plain SMTP):
   failed, with the advice to check and resend.
5. Errors are per email: a transient one (server busy, timeout) puts the email back in
   pending_send with a back-off, until ``MAX_TRIES`` attempts; one that concerns the message
   (``ItemError``: refused recipient, bad address) fails it with the reason; a permanent error of
   the connection (bad credentials) leaves the email pending and is raised, so that the run
   disables the channel as the engine does. Anything else may have happened after the server took
   the message: the email stays in "sending" and the next run asks the server (step 4).

Sending is a system action: the email's status and reason are its record, not the audit log.
"""

from __future__ import annotations

import logging
from collections import Counter
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from crm.models import (
    Email,
    EmailDirection,
    EmailReceipt,
    EmailRecipient,
    EmailStatus,
    RecipientKind,
    TrackedBy,
)
from mailboxes.models import Mailbox
from syncjobs.engine import MAX_TRIES, backoff
from syncjobs.errors import ItemError, PermanentError, TransientError
from syncjobs.mail.parse import TOKEN_PREFIX, TOKEN_RE
from syncjobs.mail.tracking import read_book
from syncjobs.mail.transport import CRM_ID_HEADER, OutgoingTransport

log = logging.getLogger(__name__)

FIRST_TRACKING_NUMBER = 1001
MAY_HAVE_BEEN_SENT = (
    "An earlier attempt ended before its outcome was recorded, and the server cannot tell whether it sent "
    "the message: it may have been sent; check the recipient and resend."
)


def send_pending(run: Any, mailbox: Mailbox, transport: OutgoingTransport) -> dict[str, int]:
    """Send the mailbox's due emails and settle those an earlier run left in "sending" (see the
    module's docstring); returns counts: sent, retry, failed, unsure.

    ``run`` is the outgoing SyncRun doing this: an email claimed before it started was claimed by
    an earlier run (a database constraint lets one run of a mailbox's channel run at a time);
    one claimed since is another worker's, still at work, and is left alone.
    """
    counts: Counter[str] = Counter()
    now = timezone.now()
    started = getattr(run, "started_at", None) or now
    ours = Email.objects.filter(
        organization_id=mailbox.organization_id, mailbox=mailbox, direction=EmailDirection.OUTGOING
    )
    interrupted = ours.filter(status=EmailStatus.SENDING, updated_at__lt=started)
    due = ours.filter(status=EmailStatus.PENDING_SEND).filter(Q(next_send_at__isnull=True) | Q(next_send_at__lte=now))
    for email in list(interrupted.order_by("created_at", "pk")):
        if _claim(email, EmailStatus.SENDING):
            _send_one(email, mailbox, transport, counts, interrupted=True)
    for email in list(due.order_by("created_at", "pk")):
        if _claim(email, EmailStatus.PENDING_SEND):
            _send_one(email, mailbox, transport, counts, interrupted=False)
    return {key: counts[key] for key in ("sent", "retry", "failed", "unsure")}


def _claim(email: Email, status: str) -> bool:
    """Take the email with one conditional UPDATE; False when another worker took it first.

    A pending email must still be pending; an interrupted one must be unchanged since it was
    listed (same version), so that two workers never both settle it.
    """
    match = {"pk": email.pk, "status": status}
    if status == EmailStatus.SENDING:
        match["version"] = email.version
    now = timezone.now()
    taken = Email.objects.filter(**match).update(
        status=EmailStatus.SENDING,
        send_attempts=F("send_attempts") + 1,
        version=F("version") + 1,
        updated_at=now,
    )
    if taken != 1:
        return False
    email.refresh_from_db()
    return True


def _send_one(
    email: Email, mailbox: Mailbox, transport: OutgoingTransport, counts: Counter[str], interrupted: bool
) -> None:
    try:
        _ensure_ids(email, mailbox)
        message = build_message(email, mailbox)
    except (ValueError, TypeError, LookupError, MessageError) as error:
        _fail(email, f"The message could not be built: {error}", counts)
        return
    crm_id = str(email.pk)
    # An earlier attempt that did not end cleanly may have reached the server: ask it first.
    if interrupted or email.send_attempts > 1:
        try:
            sent = transport.was_sent(crm_id, email.message_id)
        except PermanentError:
            if not interrupted:
                _back_to_pending(email, counts, None, "", keep_attempt=False)
            raise
        except Exception as error:  # no answer: an interrupted email asks again next run, a few times
            if not interrupted:
                _retry_or_fail(email, error, counts)
            elif email.send_attempts >= MAX_TRIES:
                _fail(email, f"{MAY_HAVE_BEEN_SENT} The server did not answer: {error}", counts)
            else:
                counts["unsure"] += 1
                _update(email, status_reason=f"Could not ask the server whether the message was sent: {error}")
            return
        if sent:
            _record_sent(email, mailbox, message, counts)
            return
        if sent is None and interrupted:
            _fail(email, MAY_HAVE_BEEN_SENT, counts)
            return
    try:
        transport.send(message, crm_id)
    except TransientError as error:
        _retry_or_fail(email, error, counts)
        return
    except ItemError as error:
        _fail(email, str(error), counts)
        return
    except PermanentError as error:
        # The connection was refused (bad credentials): nothing was sent; the run disables the channel.
        _back_to_pending(email, counts, None, str(error), keep_attempt=False)
        raise
    except Exception as error:
        # The outcome is unknown (the server may have taken the message): the next run asks it.
        log.warning("Sending email %s ended without a clear outcome", email.pk, exc_info=True)
        counts["unsure"] += 1
        reason = f"The send ended without a clear outcome ({type(error).__name__}: {error}); the next run checks."
        _update(email, status_reason=reason)
        return
    _record_sent(email, mailbox, message, counts)


def _ensure_ids(email: Email, mailbox: Mailbox) -> None:
    """Give the email its Message-ID and tracking number, once, stored before anything is sent."""
    if not email.message_id:
        domain = mailbox.address.rpartition("@")[2] or None
        Email.objects.filter(pk=email.pk, message_id="").update(
            message_id=make_msgid(domain=domain), version=F("version") + 1, updated_at=timezone.now()
        )
    if email.tracking_number is None:
        assign_tracking_number(email)
    email.refresh_from_db()


def assign_tracking_number(email: Email) -> int:
    """The email's tracking number, the next free one if it has none (unique across the portal)."""
    for _ in range(20):
        if email.tracking_number is not None:
            return email.tracking_number
        top = Email.all_objects.aggregate(top=Max("tracking_number"))["top"]
        number = max((top or 0) + 1, FIRST_TRACKING_NUMBER)
        try:
            with transaction.atomic():
                Email.all_objects.filter(pk=email.pk, tracking_number__isnull=True).update(
                    tracking_number=number, version=F("version") + 1, updated_at=timezone.now()
                )
        except IntegrityError:
            continue  # another email took the number meanwhile
        email.tracking_number = Email.all_objects.values_list("tracking_number", flat=True).get(pk=email.pk)
    if email.tracking_number is None:
        raise ValueError("no free tracking number was found")
    return email.tracking_number


def subject_with_token(subject: str, number: int) -> str:
    """The subject as sent: any tracking token it carries replaced by the email's own, at the end."""
    bare = TOKEN_RE.sub("", subject).strip()
    return f"{bare} {TOKEN_PREFIX}{number}".strip()


def _addresses(values: Any) -> list[Address]:
    """Email.to / Email.cc entries (an address, "Name <address>", or {"address", "name"}) as headers."""
    found = []
    for value in values or []:
        if isinstance(value, dict):
            found.append(Address(display_name=value.get("name") or "", addr_spec=value["address"]))
        else:
            found.append(_parse_address(str(value)))
    return found


def _parse_address(text: str) -> Address:
    name, spec = parseaddr(text)
    if "@" not in spec:
        raise ValueError(f"“{text}” is not an email address")
    return Address(display_name=name, addr_spec=spec)


def build_message(email: Email, mailbox: Mailbox) -> EmailMessage:
    """The RFC 822 message of an outgoing email, as it is sent (and found again in Sent Items)."""
    message = EmailMessage()
    sender_name = email.sender_name or (mailbox.user.get_full_name() if mailbox.user else mailbox.queue_name)
    message["From"] = Address(display_name=sender_name, addr_spec=mailbox.address)
    to, cc = _addresses(email.to), _addresses(email.cc)
    if not to and not cc:
        raise ValueError("the email has no recipient")
    if to:
        message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject_with_token(email.subject, email.tracking_number)
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = email.message_id
    if email.in_reply_to:
        message["In-Reply-To"] = email.in_reply_to
    references = " ".join(email.references.split()) or email.in_reply_to
    if references:
        message["References"] = references
    message[CRM_ID_HEADER] = str(email.pk)
    message.set_content(email.body_text or "")
    if email.body_html:
        message.add_alternative(email.body_html, subtype="html")
    return message


def _update(email: Email, **values: Any) -> None:
    """Write the email's send state as one change (new version) and keep the instance in step."""
    now = timezone.now()
    Email.all_objects.filter(pk=email.pk).update(**values, version=F("version") + 1, updated_at=now)
    for name, value in values.items():
        setattr(email, name, value)


def _record_sent(email: Email, mailbox: Mailbox, message: EmailMessage, counts: Counter[str]) -> None:
    with transaction.atomic():
        _update(
            email,
            status=EmailStatus.SENT,
            status_reason="",
            sent_at=timezone.now(),
            next_send_at=None,
            sender=mailbox.address,
            tracked_by=email.tracked_by or TrackedBy.SENT_FROM_CRM,
        )
        EmailReceipt.objects.get_or_create(email=email, mailbox=mailbox, defaults={"folder": "sentitems"})
        record_recipients(email, mailbox, message)
    counts["sent"] += 1


def _retry_or_fail(email: Email, error: Exception, counts: Counter[str]) -> None:
    if email.send_attempts >= MAX_TRIES:
        _fail(email, f"Gave up after {email.send_attempts} attempts. The last error: {error}", counts)
        return
    _back_to_pending(email, counts, getattr(error, "back_off", None), str(error), keep_attempt=True)


def _back_to_pending(email: Email, counts: Counter[str], wait: float | None, reason: str, keep_attempt: bool) -> None:
    values: dict[str, Any] = {"status": EmailStatus.PENDING_SEND, "status_reason": reason}
    if keep_attempt:
        values["next_send_at"] = timezone.now() + backoff(email.send_attempts, wait)
        counts["retry"] += 1
    else:
        values["send_attempts"] = max(email.send_attempts - 1, 0)
    _update(email, **values)


def _fail(email: Email, reason: str, counts: Counter[str]) -> None:
    _update(email, status=EmailStatus.FAILED, status_reason=reason, next_send_at=None)
    counts["failed"] += 1


def record_recipients(email: Email, mailbox: Mailbox, message: EmailMessage) -> None:
    """EmailRecipient rows for the message's From, To and Cc, each resolved to its CRM record or
    member as incoming tracking resolves them (``syncjobs.mail.tracking``)."""
    parties: dict[tuple[str, str], str] = {}
    for kind, header in ((RecipientKind.FROM, "From"), (RecipientKind.TO, "To"), (RecipientKind.CC, "Cc")):
        for address in getattr(message[header], "addresses", ()):
            parties.setdefault((kind, address.addr_spec.lower()), address.display_name)
    book = read_book(mailbox.organization, {address for _, address in parties})
    rows = [book.recipient(email, kind, address, name) for (kind, address), name in parties.items()]
    EmailRecipient.objects.bulk_create(rows, ignore_conflicts=True)
