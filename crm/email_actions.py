"""What people do with CRM emails and queue items on the email pages, each change audited.

The outgoing channel (syncjobs/mail/outgoing.py) does the sending: here an email only becomes
a draft or "pending send"; a queue item gets an assignee or is done.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
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


def save_outgoing(email: Email, actor: Actor, send: bool) -> None:
    """Save a new or edited outgoing email as a draft, or as "pending send" for the outgoing
    channel, one audit event ("email.draft_saved" or "email.send_requested"); an email to send
    asks for an outgoing run of its mailbox now rather than at the scheduler's next pass."""
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
        email.save()
        action = "email.send_requested" if send else "email.draft_saved"
        record(actor, action, email, changes=changes, organization=email.organization)
        if send and email.mailbox is not None:
            enqueue_sync(email.mailbox, Channel.OUTGOING, Trigger.MANUAL, actor)


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
