"""What a person may reach on their own pages: one helper per object type.

Everything here is the person's own: their mailbox, their sync filters, the conflicts of
their mailbox and of their desktop clients. Someone else's object is a 404 (its existence is not revealed). The one
exception is an organization's filter templates, which its administrators edit: another
member of that organization gets a 403, anybody else a 404.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from clients.models import ClientConflict
from crm.models import SyncFilter, TrackedFolder
from mailboxes.access import ADMIN, memberships, org_ids, role_required
from mailboxes.models import Mailbox, Organization, OwnerType, Role
from syncjobs.models import Conflict

# Every role: the pages are for every signed-in member of an organization.
MEMBER_ROLES = tuple(Role.values)

member_required = role_required(*MEMBER_ROLES)
admin_required = role_required(*ADMIN)


def own_mailbox(request: HttpRequest) -> Mailbox | None:
    """The person's own mailbox (one per user), if they have one."""
    return Mailbox.objects.for_list().filter(user_id=request.user.pk, owner_type=OwnerType.USER).order_by("pk").first()


def get_own_mailbox(request: HttpRequest) -> Mailbox:
    mailbox = own_mailbox(request)
    if mailbox is None:
        raise Http404
    return mailbox


def member_organizations(user: Any) -> QuerySet:
    return Organization.objects.filter(pk__in=org_ids(user, MEMBER_ROLES))


def admin_organizations(user: Any) -> QuerySet:
    return Organization.objects.filter(pk__in=org_ids(user, ADMIN))


def _get_filter(pk: Any) -> SyncFilter | None:
    try:
        return SyncFilter.objects.select_related("organization").filter(pk=pk).first()
    except ValidationError:
        return None


def get_filter_for_user(request: HttpRequest, pk: Any) -> SyncFilter:
    """One of the person's own filters, or a template of an organization they administer."""
    sync_filter = _get_filter(pk)
    if sync_filter is None:
        raise Http404
    role = memberships(request.user).get(sync_filter.organization_id)
    if role is None:
        raise Http404
    if sync_filter.user_id is None:
        if role != Role.ADMINISTRATOR:
            raise PermissionDenied
        return sync_filter
    if sync_filter.user_id != request.user.pk:
        raise Http404
    return sync_filter


def get_own_conflict(request: HttpRequest, pk: Any) -> Conflict:
    """An open or closed conflict of the person's own mailbox."""
    conflict = (
        Conflict.objects.select_related("mailbox__organization")
        .filter(pk=pk, mailbox__user_id=request.user.pk, mailbox__owner_type=OwnerType.USER)
        .first()
    )
    if conflict is None:
        raise Http404
    return conflict


def get_own_client_conflict(request: HttpRequest, pk: Any) -> ClientConflict:
    """A conflict one of the person's own client instances recorded (open or closed)."""
    conflict = (
        ClientConflict.objects.select_related("instance", "organization", "user")
        .filter(pk=pk, user_id=request.user.pk)
        .first()
    )
    if conflict is None:
        raise Http404
    return conflict


def get_own_folder(request: HttpRequest, pk: Any) -> TrackedFolder:
    """A tracked folder of the person's own mailbox."""
    folder = (
        TrackedFolder.objects.select_related(
            "mailbox__organization", "regarding_account", "regarding_contact", "regarding_lead"
        )
        .filter(pk=pk, mailbox__user_id=request.user.pk, mailbox__owner_type=OwnerType.USER)
        .first()
    )
    if folder is None:
        raise Http404
    return folder
