"""Pages that gather from several apps: the landing page and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from audit.models import AuditEvent
from mailboxes.access import AUDITORS, org_ids, role_required, roles_of
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


@role_required(*AUDITORS)
def audit_log(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.filter(organization_id__in=org_ids(request.user, AUDITORS))
    action = request.GET.get("action", "").strip()
    if action:
        events = events.filter(action__startswith=action)
    page = Paginator(events, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit/log.html", {"page": page, "action": action})
