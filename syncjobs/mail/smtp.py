"""Outgoing email over SMTP (smtplib), with a copy in the IMAP Sent folder for IMAP/SMTP profiles.

Never twice (SYNC.md, DOMAIN.md "Email tracking"): plain SMTP cannot tell afterwards whether it
sent a message, so ``was_sent`` answers None. An IMAP/SMTP profile keeps a copy in the IMAP
Sent folder, stored *before* the message is handed to the SMTP server, flagged \\Draft, and
unflagged once the server took it. A crash anywhere in between leaves either no copy (nothing
was sent: False), a \\Draft copy (the server may have taken it: None), or a plain one (True).

Errors, as the outgoing channel reads them: the server refusing the connection, the login or the
sender is a PermanentError (every message would fail the same way); refusing a recipient or the
message itself (5xx) is an ItemError (this message fails, the others go on); 4xx answers,
timeouts and lost connections before the message was handed over are TransientErrors; a
connection lost while handing it over is ``MaybeSent``: the outcome is unknown.
"""

from __future__ import annotations

import copy
import logging
import smtplib
from email.message import EmailMessage, Message
from email.utils import getaddresses, make_msgid
from typing import Any

from mailboxes.models import Mailbox, ProfileKind
from syncjobs.errors import ItemError, PermanentError, SyncError, TransientError
from syncjobs.mail.connection import (
    Endpoint,
    network_error,
    no_starttls,
    outgoing_endpoint,
    quietly,
    refused_credentials,
    tls_context,
    translated,
    words,
)
from syncjobs.mail.imap import IMAPTransport
from syncjobs.mail.transport import CRM_ID_HEADER

log = logging.getLogger(__name__)

SENDING_FLAG = r"\Draft"  # on the Sent copy until the SMTP server has taken the message


class MaybeSent(SyncError):
    """The connection broke while the server was taking the message: it may have been sent."""


def _protocol_error(error: Exception) -> SyncError | None:
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return refused_credentials(error)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return PermanentError(f"The SMTP server does not offer what is needed: {words(error)}")
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(
            f"{address} ({words(smtplib.SMTPResponseException(*answer))})"
            for address, answer in error.recipients.items()
        )
        if any(code >= 500 for code, _ in error.recipients.values()):
            return ItemError(f"The SMTP server refused the recipients: {refused}")
        return TransientError(f"The SMTP server refused the recipients for now: {refused}")
    if isinstance(error, smtplib.SMTPSenderRefused):
        if error.smtp_code >= 500:
            return PermanentError(f"The SMTP server refused the sender {error.sender}: {words(error)}")
        return TransientError(f"The SMTP server refused the sender {error.sender} for now: {words(error)}")
    if isinstance(error, smtplib.SMTPDataError):
        if error.smtp_code >= 500:
            return ItemError(f"The SMTP server refused the message: {words(error)}")
        return TransientError(f"The SMTP server did not take the message for now: {words(error)}")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return TransientError(f"The SMTP server closed the connection: {words(error)}")
    if isinstance(error, smtplib.SMTPResponseException):
        return TransientError(f"The SMTP server answered: {words(error)}")
    return None


class SMTPTransport:
    """An OutgoingTransport over SMTP; ``sent_copy`` keeps copies in an IMAP Sent folder."""

    def __init__(self, endpoint: Endpoint, sent_copy: IMAPTransport | None = None) -> None:
        self.endpoint = endpoint
        self.sent_copy = sent_copy
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def for_mailbox(cls, mailbox: Mailbox) -> SMTPTransport:
        assert mailbox.profile is not None
        imap = IMAPTransport.for_mailbox(mailbox) if mailbox.profile.kind == ProfileKind.IMAP_SMTP else None
        return cls(outgoing_endpoint(mailbox), imap)

    def check(self) -> None:
        """Log in, and find (or create) the Sent folder of an IMAP/SMTP profile (Test & Enable)."""
        self._session()
        if self.sent_copy is not None:
            self.sent_copy.sent_folder()

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()  # the server closed an idle connection: open another
        endpoint = self.endpoint
        with translated(endpoint, _protocol_error):
            if endpoint.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    endpoint.host, endpoint.port, timeout=endpoint.timeout, context=tls_context()
                )
            else:
                smtp = smtplib.SMTP(endpoint.host, endpoint.port, timeout=endpoint.timeout)
            try:
                smtp.ehlo()
                if endpoint.starttls:
                    if not smtp.has_extn("starttls"):
                        raise no_starttls(endpoint)
                    smtp.starttls(context=tls_context())
                    smtp.ehlo()
                if endpoint.password:
                    smtp.login(endpoint.username, endpoint.password)
            except BaseException:
                quietly(smtp.close)
                raise
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            quietly(self._smtp.close)
            self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            quietly(self._smtp.quit)
            self._smtp = None
        if self.sent_copy is not None:
            self.sent_copy.close()

    def send(self, message: EmailMessage, crm_id: str) -> None:
        """Send ``message`` (stamped with ``CRM_ID_HEADER``); IMAP/SMTP: keep a copy in Sent."""
        if message[CRM_ID_HEADER] is None:
            message[CRM_ID_HEADER] = crm_id
        sender, recipients = _envelope(message)
        if message["Message-ID"] is None:
            message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        international = not all(address.isascii() for address in (sender, *recipients))
        policy = message.policy.clone(linesep="\r\n", utf8=international)
        smtp = self._session()  # logged in first: a refused login leaves no copy behind
        sent_folder, copy_uid = None, None
        if self.sent_copy is not None:
            sent_folder = self.sent_copy.sent_folder()
            copy_uid = self.sent_copy.append(sent_folder, message.as_bytes(policy=policy), rf"\Seen {SENDING_FLAG}")
        try:
            self._transmit(smtp, sender, recipients, _without_bcc(message).as_bytes(policy=policy), international)
        except MaybeSent:
            raise  # the copy stays flagged: was_sent answers None
        except BaseException:
            if sent_folder is not None:
                self._discard_copy(sent_folder, crm_id, copy_uid)
            raise
        if sent_folder is not None:
            self._mark_copy_sent(sent_folder, crm_id, copy_uid)

    def _transmit(
        self, smtp: smtplib.SMTP, sender: str, recipients: list[str], data: bytes, international: bool
    ) -> None:
        options = []
        if international:
            if not smtp.has_extn("smtputf8"):
                raise ItemError("The SMTP server cannot send to or from international addresses (no SMTPUTF8).")
            options.append("SMTPUTF8")
        if not data.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        with translated(self.endpoint, _protocol_error):
            code, answer = smtp.mail(sender, options)
            if code != 250:
                quietly(smtp.rset)
                raise smtplib.SMTPSenderRefused(code, answer, sender)
            refused = {}
            for recipient in recipients:
                code, answer = smtp.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, answer)
            if refused:  # all or none: a message sent to some of its recipients cannot be fixed
                quietly(smtp.rset)
                raise smtplib.SMTPRecipientsRefused(refused)
        try:
            smtp.data(data)
        except smtplib.SMTPDataError as error:  # the server answered: it did not take the message
            refusal = _protocol_error(error)
            assert refusal is not None
            raise refusal from error
        except Exception as error:
            self._drop()
            raise MaybeSent(
                f"The connection to {self.endpoint} broke while the server was taking the message "
                f"({network_error(self.endpoint, error)}): it may have been sent."
            ) from error

    def _discard_copy(self, folder: str, crm_id: str, uid: int | None) -> None:
        assert self.sent_copy is not None
        try:
            uids = (
                [uid]
                if uid
                else [
                    u
                    for u, flags in self.sent_copy.find(folder, CRM_ID_HEADER, crm_id).items()
                    if SENDING_FLAG in flags
                ]
            )
            self.sent_copy.remove(folder, uids)
        except SyncError:
            log.warning("The Sent copy of email %s could not be removed after the send failed", crm_id, exc_info=True)

    def _mark_copy_sent(self, folder: str, crm_id: str, uid: int | None) -> None:
        assert self.sent_copy is not None
        try:
            if uid is None:
                drafts = [
                    u
                    for u, flags in self.sent_copy.find(folder, CRM_ID_HEADER, crm_id).items()
                    if SENDING_FLAG in flags
                ]
                uid = max(drafts, default=None)
            if uid is not None:
                self.sent_copy.set_flags(folder, [uid], "-FLAGS", SENDING_FLAG)
        except SyncError:  # sent all the same: never raise after the server took the message
            log.warning("The Sent copy of email %s could not be marked sent", crm_id, exc_info=True)

    def was_sent(self, crm_id: str, message_id: str) -> bool | None:
        """IMAP/SMTP: whether the Sent folder holds the message (None: it may have been sent). SMTP: None."""
        if self.sent_copy is None:
            return None
        copies = self.sent_copy.find(self.sent_copy.sent_folder(), CRM_ID_HEADER, crm_id)
        if any(SENDING_FLAG not in flags for flags in copies.values()):
            return True
        return None if copies else False


def _envelope(message: Message) -> tuple[str, list[str]]:
    """The envelope sender (Sender, else From) and recipients (To, Cc, Bcc), each once."""
    senders = [address for _name, address in getaddresses([str(message["Sender"] or message["From"] or "")])]
    sender = next((address for address in senders if address), "")
    if not sender:
        raise ItemError("The message has no sender (From).")
    values: list[Any] = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    recipients = list(dict.fromkeys(address for _name, address in getaddresses(values) if address))
    if not recipients:
        raise ItemError("The message has no recipient.")
    return sender, recipients


def _without_bcc(message: Message) -> Message:
    if message["Bcc"] is None:
        return message
    sent = copy.copy(message)  # deleting a header rebinds the copy's header list, not the original's
    del sent["Bcc"]
    return sent
