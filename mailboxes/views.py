"""The administrator console: server profiles, mailboxes and approvals."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from audit.log import Actor, record
from audit.models import AuditEvent
from mailboxes.access import (
    ADMIN,
    APPROVERS,
    get_mailbox_for_user,
    get_profile_for_user,
    org_ids,
    role_required,
    selected_mailboxes,
)
from mailboxes.forms import MailboxFilterForm, MailboxForm, ProfileForm
from mailboxes.models import ApprovalStatus, EmailServerProfile, Mailbox, TestStatus
from syncjobs.health import failing_share, is_failing
from syncjobs.views import mailbox_sync_context

HISTORY_LIMIT = 50

# The views that receive secrets: error pages and error emails show them as stars.
SECRET_POST_PARAMETERS = ("password", "oauth_client_secret")


def _history(obj: Any) -> Any:
    return AuditEvent.objects.for_object(obj)[:HISTORY_LIMIT]


def _next_or(request: HttpRequest, fallback: str, *args: Any) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback, *args)


@role_required(*ADMIN)
def dashboard(request: HttpRequest) -> HttpResponse:
    mailboxes = Mailbox.objects.filter(organization_id__in=org_ids(request.user, ADMIN))
    by_approval = dict(mailboxes.values_list("approval_status").annotate(n=Count("id")))
    by_test = dict(mailboxes.values_list("test_overall").annotate(n=Count("id")))
    ctx = {
        "total": sum(by_approval.values()),
        "by_approval": [(s, by_approval.get(s.value, 0)) for s in ApprovalStatus],
        "by_test": [(s, by_test.get(s.value, 0)) for s in TestStatus],
        "profiles": EmailServerProfile.objects.filter(organization_id__in=org_ids(request.user, ADMIN)).count(),
    }
    return render(request, "mailboxes/dashboard.html", ctx)


# Server profiles


@role_required(*ADMIN)
def profile_list(request: HttpRequest) -> HttpResponse:
    profiles = (
        EmailServerProfile.objects.filter(organization_id__in=org_ids(request.user, ADMIN))
        .select_related("organization")
        .annotate(n_mailboxes=Count("mailboxes"))
    )
    return render(request, "mailboxes/profile_list.html", {"profiles": profiles})


def _save_profile(request: HttpRequest, form: ProfileForm) -> EmailServerProfile:
    profile = form.save(commit=False)
    actor = Actor.from_request(request)
    with transaction.atomic():
        if profile.is_default:
            profile.make_default(actor)
        else:
            profile.save_audited(actor)
    return profile


@sensitive_post_parameters(*SECRET_POST_PARAMETERS)
@sensitive_variables()
@role_required(*ADMIN)
def profile_create(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, admin_org_ids=org_ids(request.user, ADMIN))
    if request.method == "POST" and form.is_valid():
        profile = _save_profile(request, form)
        messages.success(request, _("Server profile “%(name)s” created.") % {"name": profile.name})
        return redirect("profile-detail", profile.pk)
    return render(request, "mailboxes/profile_form.html", {"form": form})


@sensitive_post_parameters(*SECRET_POST_PARAMETERS)
@sensitive_variables()
@role_required(*ADMIN)
def profile_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    profile = get_profile_for_user(request, pk)
    form = ProfileForm(request.POST or None, instance=profile, admin_org_ids=org_ids(request.user, ADMIN))
    if request.method == "POST" and form.is_valid():
        _save_profile(request, form)
        messages.success(request, _("Server profile “%(name)s” saved.") % {"name": profile.name})
        return redirect("profile-detail", profile.pk)
    share = failing_share(profile, timezone.now())
    ctx = {"form": form, "profile": profile, "history": _history(profile), "failing_share": share}
    ctx["failing"] = is_failing(share)
    return render(request, "mailboxes/profile_form.html", ctx)


@role_required(*ADMIN)
def profile_delete(request: HttpRequest, pk: Any) -> HttpResponse:
    profile = get_profile_for_user(request, pk)
    in_use = profile.mailbox_addresses()
    if request.method == "POST":
        if in_use:
            messages.error(request, _("This profile is in use and was not deleted."))
            return redirect("profile-delete", profile.pk)
        profile.delete_audited(Actor.from_request(request))
        messages.success(request, _("Server profile “%(name)s” deleted.") % {"name": profile.name})
        return redirect("profile-list")
    n_in_use = profile.mailboxes.count() if in_use else 0
    return render(
        request, "mailboxes/profile_delete.html", {"profile": profile, "in_use": in_use, "n_in_use": n_in_use}
    )


# Mailboxes


@role_required(*ADMIN)
def mailbox_list(request: HttpRequest) -> HttpResponse:
    orgs = org_ids(request.user, ADMIN)
    form = MailboxFilterForm(request.GET, org_ids=orgs)
    mailboxes = form.apply(Mailbox.objects.for_list().filter(organization_id__in=orgs))
    page = Paginator(mailboxes, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    sort_query = query.copy()
    sort_query.pop("sort", None)
    ctx = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "sort_query": sort_query.urlencode(),
        "sort": request.GET.get("sort", "address"),
    }
    return render(request, "mailboxes/mailbox_list.html", ctx)


def _save_mailbox(request: HttpRequest, form: MailboxForm) -> Mailbox | None:
    """Save the form's mailbox, releasing a remapped address first; None if the database refused."""
    mailbox = form.save(commit=False)
    actor = Actor.from_request(request)
    try:
        with transaction.atomic():
            if form.remap_from is not None:
                old_owner = form.remap_from.owner_name
                form.remap_from.release_address(actor)
            mailbox.save_from_form(actor)
            if form.remap_from is not None:
                record(
                    actor,
                    "mailbox.address_remapped",
                    mailbox,
                    changes={
                        "address": [f"{mailbox.address} ({old_owner})", f"{mailbox.address} ({mailbox.owner_name})"]
                    },
                    organization=mailbox.organization,
                )
    except IntegrityError:
        # Another request took the address or the user between validation and save.
        form.add_error(
            None, _("Another change was saved at the same time; check the address and the user, then try again.")
        )
        return None
    return mailbox


@sensitive_post_parameters(*SECRET_POST_PARAMETERS)
@sensitive_variables()
@role_required(*ADMIN)
def mailbox_create(request: HttpRequest) -> HttpResponse:
    form = MailboxForm(request.POST or None, admin_org_ids=org_ids(request.user, ADMIN))
    if request.method == "POST" and form.is_valid():
        mailbox = _save_mailbox(request, form)
        if mailbox is not None:
            messages.success(request, _("Mailbox %(mailbox)s created.") % {"mailbox": mailbox})
            return redirect("mailbox-detail", mailbox.pk)
    return render(request, "mailboxes/mailbox_form.html", {"form": form})


@role_required(*ADMIN)
def mailbox_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk)
    ctx = {**mailbox_sync_context(mailbox), "history": _history(mailbox)}
    return render(request, "mailboxes/mailbox_detail.html", ctx)


@sensitive_post_parameters(*SECRET_POST_PARAMETERS)
@sensitive_variables()
@role_required(*ADMIN)
def mailbox_edit(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk)
    form = MailboxForm(request.POST or None, instance=mailbox, admin_org_ids=org_ids(request.user, ADMIN))
    if request.method == "POST" and form.is_valid():
        if _save_mailbox(request, form) is not None:
            messages.success(request, _("Mailbox %(mailbox)s saved.") % {"mailbox": mailbox})
            return redirect("mailbox-detail", mailbox.pk)
    return render(request, "mailboxes/mailbox_form.html", {"form": form, "mailbox": mailbox})


@role_required(*ADMIN)
def mailbox_delete(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk)
    if request.method == "POST":
        mailbox.delete_audited(Actor.from_request(request))
        messages.success(request, _("Mailbox %(mailbox)s deleted.") % {"mailbox": mailbox})
        return redirect("mailbox-list")
    return render(request, "mailboxes/mailbox_delete.html", {"mailbox": mailbox})


def _set_approval(request: HttpRequest, pk: Any, approve: bool) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk, APPROVERS)
    actor = Actor.from_request(request)
    try:
        mailbox.approve(actor) if approve else mailbox.reject(actor)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        text = _("Email address %(address)s approved.") if approve else _("Email address %(address)s rejected.")
        messages.success(request, text % {"address": mailbox.address})
    return _next_or(request, "approvals")


@require_POST
@role_required(*APPROVERS)
def mailbox_approve(request: HttpRequest, pk: Any) -> HttpResponse:
    return _set_approval(request, pk, approve=True)


@require_POST
@role_required(*APPROVERS)
def mailbox_reject(request: HttpRequest, pk: Any) -> HttpResponse:
    return _set_approval(request, pk, approve=False)


# Approvals


@role_required(*APPROVERS)
def approvals(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", ApprovalStatus.PENDING)
    if status not in (ApprovalStatus.PENDING, ApprovalStatus.REJECTED, ApprovalStatus.APPROVED):
        status = ApprovalStatus.PENDING
    mailboxes = (
        Mailbox.objects.for_list()
        .filter(organization_id__in=org_ids(request.user, APPROVERS), approval_status=status)
        .order_by("address", "id")
    )
    page = Paginator(mailboxes, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "mailboxes/approvals.html", {"page": page, "status": status, "statuses": ApprovalStatus})


def _bulk(request: HttpRequest, approve: bool) -> HttpResponse:
    if not request.POST.getlist("mailbox"):
        messages.error(request, _("Select at least one mailbox."))
        return _next_or(request, "approvals")
    mailboxes = selected_mailboxes(request, APPROVERS)
    actor = Actor.from_request(request)
    try:
        with transaction.atomic():
            for mailbox in mailboxes:
                mailbox.approve(actor) if approve else mailbox.reject(actor)
    except ValidationError as error:
        # For example an address released by a remap since the page was loaded: all or nothing.
        text = _("%(mailbox)s: %(error)s Nothing was changed.")
        messages.error(request, text % {"mailbox": mailbox, "error": " ".join(error.messages)})
        return _next_or(request, "approvals")
    text = (
        ngettext("%(n)d email address approved.", "%(n)d email addresses approved.", len(mailboxes))
        if approve
        else ngettext("%(n)d email address rejected.", "%(n)d email addresses rejected.", len(mailboxes))
    )
    messages.success(request, text % {"n": len(mailboxes)})
    return _next_or(request, "approvals")


@require_POST
@role_required(*APPROVERS)
def approvals_approve(request: HttpRequest) -> HttpResponse:
    return _bulk(request, approve=True)


@require_POST
@role_required(*APPROVERS)
def approvals_reject(request: HttpRequest) -> HttpResponse:
    return _bulk(request, approve=False)
