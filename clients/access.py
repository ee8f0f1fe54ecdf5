"""Who may see and change client instances and their requests (one helper per object type).

An instance is its user's alone: anyone else's is a 404. A request is decided by the
administrators and approvers of the user's organization: a request of an organization the
person is no member of is a 404, a member without one of those roles gets a 403.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest

from clients.models import ClientInstance, PromotionRequest
from mailboxes.access import APPROVERS, memberships, org_ids


def get_own_instance(request: HttpRequest, pk: Any) -> ClientInstance:
    instance = ClientInstance.objects.select_related("organization").filter(pk=pk, user=request.user).first()
    if instance is None:
        raise Http404
    return instance


def get_request_for_user(request: HttpRequest, pk: Any, roles: tuple[str, ...] = APPROVERS) -> PromotionRequest:
    found = PromotionRequest.objects.select_related("instance", "organization", "user").filter(pk=pk).first()
    if found is None:
        raise Http404
    role = memberships(request.user).get(found.organization_id)
    if role is None:
        raise Http404
    if role not in roles:
        raise PermissionDenied
    return found


def selected_requests(request: HttpRequest, roles: tuple[str, ...] = APPROVERS) -> list[PromotionRequest]:
    """The requests ticked in a bulk form; a 404 if any is not one the person may decide."""
    ids = request.POST.getlist("request")
    try:
        found = list(
            PromotionRequest.objects.select_related("instance", "organization", "user")
            .filter(pk__in=ids, organization_id__in=org_ids(request.user, roles))
            .order_by("created_at", "id")
        )
    except ValidationError:
        raise Http404 from None
    if len(found) != len(set(ids)):
        raise Http404
    return found
