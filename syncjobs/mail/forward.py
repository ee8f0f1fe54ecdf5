"""Forward mailboxes: messages users forward as attachments, tracked for the users' own mailboxes.

In the reference product a user whose incoming email goes through a forward mailbox has a rule on
the mail server that forwards each message they receive, as an attachment, to one shared mailbox;
server-side synchronization reads that mailbox and processes each original message on behalf of
the user's mailbox. Here the forward mailbox is the mailbox whose incoming method is "Forward
mailbox" (it sends nothing: ``Mailbox.clean``), and each message fetched from it is processed so:

1. The outer message's From is the user who forwarded it: the original recipient's mailbox is the
   mailbox of the forward mailbox's organization with that address (never a forward mailbox).
   It must be active and its address approved, as for any mailbox that tracks email.
2. Each attached message (a ``message/rfc822`` part) is an original message, tracked by
   ``tracking.track(forward mailbox, ..., on_behalf_of=that mailbox)``: that mailbox's tracking
   rule and owner apply, and the receipt is that mailbox's. The receipt carries no server id: the
   forward mailbox's item id means nothing in the user's mailbox (and is deleted in step 4).
3. A message received before the forward mailbox's "process email received after" mark is left
   alone. One that cannot be processed is recorded as an ``IgnoredMessage`` of the forward
   mailbox with the reason, and left there for an administrator to look at: no attachment
   ("forwarded without the original message attached"), a sender with no mailbox in the
   organization ("no mailbox in this organization for <address>"), a message over the size
   limit, an attached message that is not readable. None of these stops the other messages.
4. When the forward mailbox has ``delete_processed``, a processed message is deleted from it
   (``transport.delete``). A server error while deleting is raised: the run fails and a later
   run processes the same messages again, finding them tracked already, and deletes them.
"""

from __future__ import annotations

from crm.models import Email
from mailboxes.models import IncomingMethod, Mailbox
from syncjobs.errors import PermanentError
from syncjobs.mail.parse import BadMessage, Parsed, parse
from syncjobs.mail.tracking import ignore, read, track
from syncjobs.mail.transport import Fetched, IncomingTransport

NO_ATTACHMENT = "forwarded without the original message attached"


def process_forwarded(mailbox: Mailbox, fetched: Fetched, transport: IncomingTransport) -> Email | None:
    """Process one message of a forward mailbox (see the module's docstring); the email of the first
    attached message tracked (or found tracked already), None when none was."""
    # Older than the forward mailbox processes (left alone), too large or not a message (recorded).
    outer = read(mailbox, fetched, mailbox.email_received_after())
    if not isinstance(outer, Parsed):
        return None
    if not outer.forwarded:
        ignore(mailbox, fetched, NO_ATTACHMENT, outer)
        return None
    recipient, problem = original_recipient(mailbox, outer.sender.address if outer.sender else "")
    if recipient is None:
        ignore(mailbox, fetched, problem, outer)
        return None
    first: Email | None = None
    problems = []
    for number, raw in enumerate(outer.forwarded, 1):
        try:
            parse(raw)
            original = Fetched(source_id="", raw=raw, received_at=fetched.received_at)
            email = track(mailbox, original, on_behalf_of=recipient)
        except (BadMessage, PermanentError) as error:
            problems.append(f"attached message {number}: {getattr(error, 'reason', error)}")
            continue
        first = first or email
    if problems:
        ignore(mailbox, fetched, "; ".join(problems), outer)
    elif mailbox.delete_processed:
        transport.delete(fetched.folder, [fetched.source_id])
    return first


def original_recipient(forward: Mailbox, address: str) -> tuple[Mailbox | None, str]:
    """The mailbox of the forward mailbox's organization with this address, or None and why not."""
    found = (
        Mailbox.objects.select_related("organization", "profile", "user")
        .filter(organization_id=forward.organization_id, address__iexact=address.strip())
        .exclude(incoming_method=IncomingMethod.FORWARD_MAILBOX)
        .first()
        if address
        else None
    )
    if found is None:
        return None, f"no mailbox in this organization for {address or '(a message without sender)'}"
    if not found.is_active:
        return None, f"the mailbox of {address} is not active"
    if not found.address_ok():
        return None, f"the address {address} is not approved"
    return found, ""
