"""Who may see CRM emails and queues.

Emails follow the record rules of crm/access.py: administrators see every email of their
organizations, other roles none (403). A plain user sees the emails they own, and besides
those the emails that came to their own mailbox (one email, many receipts: the owner is the
first mailbox's user) and the emails in a queue of their organization (queues are shared
work). Anything else is a 404: its existence is not revealed.

Queues (queue mailboxes) are seen by the administrators and users of their organization.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest

from crm.access import CRM_ROLES
from crm.models import Email, EmailReceipt, EmailRecipient, QueueItem
from mailboxes.access import ADMIN, memberships, org_ids
from mailboxes.models import Mailbox, OwnerType, Role


def visible_emails(user: Any) -> QuerySet:
    """The live emails the user may see."""
    shared = (
        Q(owner_id=user.pk)
        | Exists(EmailReceipt.objects.filter(email=OuterRef("pk"), mailbox__user_id=user.pk))
        | Exists(QueueItem.objects.filter(email=OuterRef("pk")))
    )
    return Email.objects.filter(
        Q(organization_id__in=org_ids(user, ADMIN)) | Q(organization_id__in=org_ids(user, (Role.USER,))) & shared
    )


def _check_role(request: HttpRequest, organization_id: Any) -> str:
    role = memberships(request.user).get(organization_id)
    if role is None:
        raise Http404
    if role not in CRM_ROLES:
        raise PermissionDenied
    return role


def get_email_for_user(request: HttpRequest, pk: Any) -> Email:
    email = (
        Email.objects.select_related(
            "organization",
            "owner",
            "mailbox",
            "regarding_account",
            "regarding_contact",
            "regarding_lead",
            "regarding_appointment",
        )
        .filter(pk=pk)
        .first()
    )
    if email is None:
        raise Http404
    role = _check_role(request, email.organization_id)
    if role == Role.USER and email.owner_id != request.user.pk:
        if not visible_emails(request.user).filter(pk=email.pk).exists():
            raise Http404
    return email


def regarding_or_recipient(record: Any) -> Q:
    """The emails that regard a record or have it as a sender or recipient."""
    kind = record._meta.model_name
    condition = Q(**{f"regarding_{kind}": record})
    if kind != "appointment":
        condition |= Exists(EmailRecipient.objects.filter(email=OuterRef("pk"), **{kind: record}))
    return condition


def visible_queues(user: Any) -> QuerySet:
    return Mailbox.objects.filter(owner_type=OwnerType.QUEUE, organization_id__in=org_ids(user, CRM_ROLES))


def get_queue_for_user(request: HttpRequest, pk: Any) -> Mailbox:
    queue = Mailbox.objects.select_related("organization").filter(pk=pk, owner_type=OwnerType.QUEUE).first()
    if queue is None:
        raise Http404
    _check_role(request, queue.organization_id)
    return queue


def get_queue_item_for_user(request: HttpRequest, pk: Any) -> QueueItem:
    item = QueueItem.objects.select_related("queue", "queue__organization", "email").filter(pk=pk).first()
    if item is None:
        raise Http404
    _check_role(request, item.queue.organization_id)
    return item
