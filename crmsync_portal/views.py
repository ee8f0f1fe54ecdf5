"""Pages that gather from several apps: the landing page, the sign-in lockout."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.csp import CSP
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.csp import csp_override

from mailboxes.access import roles_of
from mailboxes.models import Role


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each person to the first page their role may use."""
    roles = roles_of(request.user)
    if Role.ADMINISTRATOR in roles:
        return redirect("dashboard")
    if Role.APPROVER in roles:
        return redirect("approvals")
    if Role.AUDITOR in roles:
        return redirect("audit-log")
    return render(request, "home.html")


def locked_out(request: HttpRequest, response: HttpResponse | None = None, credentials: Any = None) -> HttpResponse:
    """The sign-in page with the lockout message (django-axes' AXES_LOCKOUT_CALLABLE), for
    /login/ and the Django admin's sign-in alike."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = ngettext(
        "Too many failed sign-ins. For your security, sign-in is blocked: try again in %(minutes)d minute.",
        "Too many failed sign-ins. For your security, sign-in is blocked: try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}
    context = {"form": AuthenticationForm(request), "next": request.POST.get("next", ""), "locked_out": message}
    return render(request, "registration/login.html", context, status=429)


# django-rq's dashboard pages carry inline scripts (select all, confirm actions).
QUEUE_DASHBOARD_CSP = {**settings.SECURE_CSP, "script-src": [CSP.SELF, CSP.UNSAFE_INLINE]}


def superuser_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For django-rq's views: only superusers, as the dashboard shows job arguments and can
    empty queues.

    django-rq's views send whoever is not staff to the admin's sign-in page; a staff user who
    is not a superuser gets a 403 here.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_staff and not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return csp_override(QUEUE_DASHBOARD_CSP)(wrapper)


class SignInView(auth_views.LoginView):
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**kwargs) | {"site_name": settings.SITE_NAME}


class SignOutView(auth_views.LogoutView):
    """Sign out, and say so on the sign-in page that follows."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, _("You are signed out."))
        return response
