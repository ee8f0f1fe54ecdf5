"""Access helpers for the sync records: they belong to the organization of their mailbox.

As in mailboxes.access: another organization's object is a 404, a role that may not
act on it a 403.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from mailboxes.access import ADMIN, memberships
from syncjobs.models import Conflict, ItemLink, SyncRun


def _get(request: HttpRequest, qs: QuerySet, pk: Any, roles: tuple[str, ...]) -> Any:
    obj: Model | None = qs.select_related("mailbox__organization", "mailbox__profile").filter(pk=pk).first()
    if obj is None:
        raise Http404
    role = memberships(request.user).get(obj.mailbox.organization_id)
    if role is None:
        raise Http404
    if role not in roles:
        raise PermissionDenied
    return obj


def get_run_for_user(request: HttpRequest, pk: Any, roles: tuple[str, ...] = ADMIN) -> SyncRun:
    return _get(request, SyncRun.objects.all(), pk, roles)


def get_link_for_user(request: HttpRequest, pk: Any, roles: tuple[str, ...] = ADMIN) -> ItemLink:
    return _get(request, ItemLink.objects.all(), pk, roles)


def get_conflict_for_user(request: HttpRequest, pk: Any, roles: tuple[str, ...] = ADMIN) -> Conflict:
    return _get(request, Conflict.objects.all(), pk, roles)
