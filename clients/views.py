"""Pages: a user's client instances, and the queue where approvers decide sync-instance changes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from audit.log import Actor
from clients.access import get_own_instance, get_request_for_user, selected_requests
from clients.models import (
    ClientConflict,
    ClientError,
    ClientInstance,
    ConflictStatus,
    PromotionRequest,
    RequestStatus,
)
from mailboxes.access import APPROVERS, org_ids, role_required

LIST_LIMIT = 50


def _next_or(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback)


# A user's own instances


@login_required
def instance_list(request: HttpRequest) -> HttpResponse:
    # Live instances first (NULL sorts first on SQLite, last on PostgreSQL: say which).
    instances = ClientInstance.objects.filter(user=request.user).order_by(
        F("revoked_at").asc(nulls_first=True), "-created_at"
    )
    requests = (
        PromotionRequest.objects.filter(user=request.user)
        .select_related("instance", "previous")
        .order_by("-created_at", "id")[:LIST_LIMIT]
    )
    conflicts = (
        ClientConflict.objects.filter(user=request.user, status=ConflictStatus.OPEN)
        .select_related("instance")
        .order_by("-created_at")[:LIST_LIMIT]
    )
    ctx = {"instances": instances, "requests": requests, "conflicts": conflicts}
    return render(request, "clients/instance_list.html", ctx)


@login_required
def instance_revoke(request: HttpRequest, pk: Any) -> HttpResponse:
    instance = get_own_instance(request, pk)
    if instance.is_revoked:
        messages.info(request, _("“%(name)s” is revoked already.") % {"name": instance})
        return redirect("client-list")
    if request.method == "POST":
        instance.revoke(Actor.from_request(request))
        messages.success(request, _("“%(name)s” is revoked: its token no longer works.") % {"name": instance})
        return redirect("client-list")
    return render(request, "clients/revoke_confirm.html", {"instance": instance})


# The approval queue


@role_required(*APPROVERS)
def request_queue(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", RequestStatus.PENDING)
    if status not in RequestStatus.values:
        status = RequestStatus.PENDING
    found = (
        PromotionRequest.objects.filter(organization_id__in=org_ids(request.user, APPROVERS), status=status)
        .select_related("user", "instance", "previous", "organization")
        .order_by("created_at", "id")
    )
    page = Paginator(found, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    if status == RequestStatus.PENDING:
        # A pending request shows the instance that syncs now (it may have changed since the request).
        users = [r.user_id for r in page.object_list]
        current = {i.user_id: i for i in ClientInstance.objects.filter(user_id__in=users, is_sync_instance=True)}
        for row in page.object_list:
            row.current = current.get(row.user_id)
    else:
        for row in page.object_list:
            row.current = row.previous
    ctx = {"page": page, "status": status, "statuses": RequestStatus}
    return render(request, "clients/request_queue.html", ctx)


def _decide(request: HttpRequest, found: PromotionRequest, approve: bool) -> str | None:
    """Approve or reject one request; the error in words, or None."""
    actor = Actor.from_request(request)
    reason = request.POST.get("reason", "")
    try:
        found.approve(actor, reason) if approve else found.reject(actor, reason)
    except (ClientError, ValidationError) as error:
        text = error.messages[0] if isinstance(error, ValidationError) else str(error)
        return _("%(user)s, “%(instance)s”: %(error)s") % {
            "user": found.user.get_username(),
            "instance": found.instance,
            "error": text,
        }
    return None


@require_POST
@role_required(*APPROVERS)
def request_approve(request: HttpRequest, pk: Any) -> HttpResponse:
    found = get_request_for_user(request, pk)
    error = _decide(request, found, approve=True)
    if error:
        messages.error(request, error)
    else:
        text = _("“%(instance)s” is now the synchronizing instance of %(user)s.")
        messages.success(request, text % {"instance": found.instance, "user": found.user.get_username()})
    return _next_or(request, "client-requests")


@require_POST
@role_required(*APPROVERS)
def request_reject(request: HttpRequest, pk: Any) -> HttpResponse:
    found = get_request_for_user(request, pk)
    error = _decide(request, found, approve=False)
    if error:
        messages.error(request, error)
    else:
        text = _("The request of %(user)s for “%(instance)s” is rejected.")
        messages.success(request, text % {"instance": found.instance, "user": found.user.get_username()})
    return _next_or(request, "client-requests")


def _bulk(request: HttpRequest, approve: bool) -> HttpResponse:
    """Decide each ticked request on its own: one already decided (by someone else meanwhile)
    is reported and the others go ahead."""
    if not request.POST.getlist("request"):
        messages.error(request, _("Select at least one request."))
        return _next_or(request, "client-requests")
    if not approve and not request.POST.get("reason", "").strip():
        messages.error(request, _("Give a reason for the rejection: the user reads it."))
        return _next_or(request, "client-requests")
    done = 0
    for found in selected_requests(request):
        error = _decide(request, found, approve)
        if error:
            messages.error(request, error)
        else:
            done += 1
    if done:
        text = (
            ngettext("%(n)d request approved.", "%(n)d requests approved.", done)
            if approve
            else ngettext("%(n)d request rejected.", "%(n)d requests rejected.", done)
        )
        messages.success(request, text % {"n": done})
    return _next_or(request, "client-requests")


@require_POST
@role_required(*APPROVERS)
def requests_approve(request: HttpRequest) -> HttpResponse:
    return _bulk(request, approve=True)


@require_POST
@role_required(*APPROVERS)
def requests_reject(request: HttpRequest) -> HttpResponse:
    return _bulk(request, approve=False)
