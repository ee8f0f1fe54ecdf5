"""What people do with CRM emails and queue items on the email pages, each change audited.

The outgoing channel (syncjobs/mail/outgoing.py) does the sending: here an email only becomes
a draft or "pending send"; a queue item gets an assignee or is done.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit.log import Actor, record
from crm.email_forms import address_text
from crm.models import Email, EmailStatus, QueueItem, QueueItemStatus
from mailboxes.models import Channel, Mailbox, OutgoingMethod
from selfservice.services import advice
from syncjobs.jobs import enqueue_sync
from syncjobs.models import Trigger
from syncjobs.testenable import sync_refusal


def sender_problem(mailbox: Mailbox | None) -> str:
    """Why email cannot be sent from the user's mailbox and what to do about it; "" when it can."""
    if mailbox is None:
        return _("You have no mailbox to send from. Set one up under My mailbox.")
    if mailbox.outgoing_method != OutgoingMethod.SERVER_SIDE:
        return _(
            "Your mailbox does not send email through the portal (outgoing email: %(method)s). Choose "
            "“Server-side synchronization” for outgoing email under My mailbox, then run Test & Enable."
        ) % {"method": mailbox.get_outgoing_method_display()}
    if refusal := sync_refusal(mailbox, Channel.OUTGOING):
        return f"{refusal} {advice(mailbox, Channel.OUTGOING)}"
    return ""


def _addresses(values: list[Any]) -> str:
    return ", ".join(address_text(a) for a in values)


class NotADraft(Exception):
    """The email to save is no longer a draft (sent, on its way, deleted) or was saved already."""


def save_outgoing(email: Email, actor: Actor, send: bool) -> None:
    """Save a new or edited outgoing email as a draft, or as "pending send" for the outgoing
    channel, one audit event ("email.draft_saved" or "email.send_requested"); an email to send
    asks for an outgoing run of its mailbox now rather than at the scheduler's next pass.

    An existing email changes only while it is still a draft: its row is locked and its status
    read again first, so that a double submit or a form left open while the email was sent never
    sends it again nor overwrites it (``NotADraft``, with the reason in words). A new email is
    inserted, never updated: the same compose form submitted twice at once saves it once.
    """
    adding = email._state.adding
    email.status = EmailStatus.PENDING_SEND if send else EmailStatus.DRAFT
    email.status_reason = ""
    email.next_send_at = None
    changes = {
        "subject": ["", email.subject],
        "to": ["", _addresses(email.to)],
        "status": ["" if adding else EmailStatus.DRAFT, email.status],
    }
    if email.cc:
        changes["cc"] = ["", _addresses(email.cc)]
    with transaction.atomic():
        if adding:
            try:
                email.save(force_insert=True)
            except IntegrityError:
                raise NotADraft(_("This email was saved already, by an earlier submit of the same form.")) from None
        else:
            _lock_draft(email)
            email.save()
        action = "email.send_requested" if send else "email.draft_saved"
        record(actor, action, email, changes=changes, organization=email.organization)
        if send and email.mailbox is not None:
            enqueue_sync(email.mailbox, Channel.OUTGOING, Trigger.MANUAL, actor)


def _lock_draft(email: Email) -> None:
    """Lock the email's row and check that it is still a draft; keep its current version."""
    current = Email.objects.select_for_update().filter(pk=email.pk).values_list("status", "version").first()
    if current is None:
        raise NotADraft(_("This email was deleted meanwhile: your changes were not saved."))
    status, email.version = current
    if status != EmailStatus.DRAFT:
        raise NotADraft(
            _(
                "This email is no longer a draft (it is “%(status)s”): your changes were not saved. "
                "Open the email to see where it is."
            )
            % {"status": EmailStatus(status).label}
        )


def assign(item: QueueItem, user: Any, actor: Actor) -> None:
    """Give a queue item to a member (or to nobody)."""
    before = item.assigned_to
    if before == user:
        return

    def name(who: Any) -> str:
        return (who.get_full_name() or who.get_username()) if who else ""

    with transaction.atomic():
        item.assigned_to = user
        item.save(update_fields=["assigned_to"])
        changes = {"assigned_to": [name(before), name(user)]}
        record(actor, "queue_item.assigned", item, changes=changes, organization=item.queue.organization)


def finish(item: QueueItem, actor: Actor) -> bool:
    """Mark an active queue item done; False if it was done already (by someone else, say)."""
    with transaction.atomic():
        done = QueueItem.objects.filter(pk=item.pk, status=QueueItemStatus.ACTIVE).update(status=QueueItemStatus.DONE)
        if not done:
            return False
        item.status = QueueItemStatus.DONE
        changes = {"status": [QueueItemStatus.ACTIVE, QueueItemStatus.DONE]}
        record(actor, "queue_item.done", item, changes=changes, organization=item.queue.organization)
    return True
