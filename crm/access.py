"""Who may see and change CRM records.

Administrators see and change every record of their organizations; plain users
only the records they own. Other roles see no CRM records at all (403). A
record of an organization the user is no member of, or another user's record
for a plain user, is a 404: its existence is not revealed.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest

from crm.models import CrmRecord
from mailboxes.access import ADMIN, memberships, org_ids
from mailboxes.models import Role

CRM_ROLES = (Role.ADMINISTRATOR, Role.USER)


def record_org_ids(user: Any) -> list[Any]:
    """The organizations in which the user may create records."""
    return org_ids(user, CRM_ROLES)


def visible_records(user: Any, model: type[CrmRecord]) -> QuerySet:
    """The live records of ``model`` the user may see: all of their admin organizations, their own elsewhere."""
    admin_orgs = org_ids(user, ADMIN)
    user_orgs = org_ids(user, (Role.USER,))
    return model.objects.filter(Q(organization_id__in=admin_orgs) | Q(organization_id__in=user_orgs, owner_id=user.pk))


def get_record_for_user(request: HttpRequest, model: type[CrmRecord], pk: Any) -> Any:
    record = model.objects.select_related("organization", "owner").filter(pk=pk).first()
    if record is None:
        raise Http404
    role = memberships(request.user).get(record.organization_id)
    if role is None:
        raise Http404
    if role == Role.USER and record.owner_id != request.user.pk:
        raise Http404
    if role not in CRM_ROLES:
        raise PermissionDenied
    return record
