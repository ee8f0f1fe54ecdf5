"""The sign-in throttle's authentication backend (django-axes)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from audit.log import Actor, record
from audit.models import AuditEvent


class ThrottleBackend(AxesStandaloneBackend):
    """django-axes' check, for sign-ins that come with a request.

    Without a request (a management command, the shell) there is no address to throttle and
    no one guessing from outside: those sign-ins go straight to the model backend, where
    django-axes would refuse them.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)


# Connected when this module is imported, which django.contrib.auth does (it loads the
# backends) before the first sign-in can fail.
@receiver(user_locked_out)
def audit_lockout(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    """Record a lockout in the audit log of the user's organizations, once per lockout.

    1. A user name that belongs to no one has no object to record on: skipped.
    2. django-axes sends the signal again for each attempt refused during a lockout: recorded
       only when the user has no lockout event within the cool-off time.
    """
    user = get_user_model().objects.filter(username=username).first() if username else None
    if user is None:
        return
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    if AuditEvent.objects.for_object(user).filter(action="user.locked_out", time__gte=since).exists():
        return
    actor = Actor(ip=ip_address, name=username or "anonymous")
    organizations = [m.organization for m in user.memberships.select_related("organization")] or [None]
    for organization in organizations:
        record(actor, "user.locked_out", user, organization=organization)
