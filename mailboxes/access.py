"""Who may see and change what: one helper per object type.

An object of an organization the user is no member of is a 404 (its
existence is not revealed); a member whose role may not do the action gets
a 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest

from mailboxes.models import EmailServerProfile, Mailbox, Membership, Role

ADMIN = (Role.ADMINISTRATOR,)
APPROVERS = (Role.ADMINISTRATOR, Role.APPROVER)
AUDITORS = (Role.ADMINISTRATOR, Role.AUDITOR)


def memberships(user: Any) -> dict[Any, str]:
    """{organization id: role} for a user, cached on the user object for the request."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, "_portal_memberships", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("organization_id", "role"))
        user._portal_memberships = cached
    return cached


def roles_of(user: Any) -> frozenset[str]:
    return frozenset(memberships(user).values())


def org_ids(user: Any, roles: tuple[str, ...]) -> list[Any]:
    return [org for org, role in memberships(user).items() if role in roles]


def role_required(*roles: str) -> Callable:
    """Signed in, and holding one of the roles in at least one organization."""

    def decorator(view: Callable) -> Callable:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not roles_of(request.user) & set(roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _check(user: Any, organization_id: Any, roles: tuple[str, ...]) -> None:
    role = memberships(user).get(organization_id)
    if role is None:
        raise Http404
    if role not in roles:
        raise PermissionDenied


def selected_mailboxes(request: HttpRequest, roles: tuple[str, ...], data: Any = None) -> list[Mailbox]:
    """The mailboxes ticked in a bulk form; a 404 if any is not one of the user's (then nothing is done).

    ``data`` is where the ticks are: the POST by default, the query string of a confirmation page.
    """
    ids = (request.POST if data is None else data).getlist("mailbox")
    try:
        mailboxes = list(
            Mailbox.objects.for_list().filter(pk__in=ids, organization_id__in=org_ids(request.user, roles))
        )
    except ValidationError:
        raise Http404 from None
    if len(mailboxes) != len(set(ids)):
        raise Http404
    return mailboxes


def get_mailbox_for_user(request: HttpRequest, pk: Any, roles: tuple[str, ...] = ADMIN) -> Mailbox:
    mailbox = Mailbox.objects.for_list().filter(pk=pk).first()
    if mailbox is None:
        raise Http404
    _check(request.user, mailbox.organization_id, roles)
    return mailbox


def get_profile_for_user(request: HttpRequest, pk: Any, roles: tuple[str, ...] = ADMIN) -> EmailServerProfile:
    profile = EmailServerProfile.objects.select_related("organization").filter(pk=pk).first()
    if profile is None:
        raise Http404
    _check(request.user, profile.organization_id, roles)
    return profile
