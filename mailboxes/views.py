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
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from audit.log import Actor, record
from audit.models import AuditEvent
from crm.folders import mail_tracking
from mailboxes import bulk
from mailboxes.access import (
    ADMIN,
    APPROVERS,
    get_mailbox_for_user,
    get_profile_for_user,
    org_ids,
    role_required,
)
from mailboxes.forms import MailboxFilterForm, MailboxForm, ProfileForm
from mailboxes.models import (
    ApprovalStatus,
    Channel,
    EmailServerProfile,
    IncomingMethod,
    Mailbox,
    TestStatus,
)
from syncjobs.health import failing_share, is_failing
from syncjobs.views import mailbox_sync_context

HISTORY_LIMIT = 50
# How many mailboxes a confirmation page lists before it says "and N more".
CONFIRM_LISTED = 100

# The views that receive secrets: error pages and error emails show them as stars.
SECRET_POST_PARAMETERS = ("password", "oauth_client_secret")


def _history(obj: Any) -> Any:
    return AuditEvent.objects.for_object(obj)[:HISTORY_LIMIT]


def _safe_next(request: HttpRequest, data: Any) -> str:
    """The ``next`` of a form or query string if it stays on this site, else ""."""
    target = data.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return ""


def _next_or(request: HttpRequest, fallback: str, *args: Any) -> HttpResponse:
    return redirect(_safe_next(request, request.POST) or reverse(fallback, args=args))


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


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


@require_GET
@role_required(*ADMIN)
def profile_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    """The profile's settings in words, the mailboxes that use it, and its history."""
    profile = get_profile_for_user(request, pk)
    share = failing_share(profile, timezone.now())
    ctx = {
        "profile": profile,
        "settings": profile.settings_shown(),
        "n_mailboxes": profile.mailboxes.count(),
        "history": _history(profile),
        "failing_share": share,
        "failing": is_failing(share),
    }
    return render(request, "mailboxes/profile_detail.html", ctx)


@sensitive_post_parameters(*SECRET_POST_PARAMETERS)
@sensitive_variables()
@role_required(*ADMIN)
def profile_edit(request: HttpRequest, pk: Any) -> HttpResponse:
    profile = get_profile_for_user(request, pk)
    form = ProfileForm(request.POST or None, instance=profile, admin_org_ids=org_ids(request.user, ADMIN))
    if request.method == "POST" and form.is_valid():
        _save_profile(request, form)
        messages.success(request, _("Server profile “%(name)s” saved.") % {"name": profile.name})
        return redirect("profile-detail", profile.pk)
    return render(request, "mailboxes/profile_form.html", {"form": form, "profile": profile, "editing": True})


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
    # The way forward: move its mailboxes to another profile, then come back here.
    change_query = urlencode({"all_matching": 1, "profile": profile.pk, "next": request.path})
    ctx = {"profile": profile, "in_use": in_use, "n_in_use": n_in_use, "change_query": change_query}
    return render(request, "mailboxes/profile_delete.html", ctx)


# Mailboxes


# The list's sortable columns, in the order of the page.
SORT_COLUMNS = (
    ("address", gettext_lazy("Email address")),
    ("owner", gettext_lazy("Owner")),
    ("profile", gettext_lazy("Server profile")),
    ("approval", gettext_lazy("Approval")),
    ("status", gettext_lazy("Test status")),
)
# Short names for the methods column: "Server-side: incoming, outgoing, ACT".
METHOD_SHORT = {
    IncomingMethod.SERVER_SIDE: gettext_lazy("Server-side"),
    IncomingMethod.CLIENT: gettext_lazy("Client"),
    IncomingMethod.FORWARD_MAILBOX: gettext_lazy("Forward mailbox"),
    IncomingMethod.NONE: gettext_lazy("None"),
}
CHANNEL_SHORT = {
    Channel.INCOMING: gettext_lazy("incoming"),
    Channel.OUTGOING: gettext_lazy("outgoing"),
    Channel.ACT: gettext_lazy("ACT"),
}


def _sort_columns(request: HttpRequest, sort: str) -> dict[str, dict[str, Any]]:
    """Per column: its label, the link that sorts by it (the other way round if it is the sort now), aria-sort."""
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("sort", None)
    base = query.urlencode()
    columns = {}
    for key, label in SORT_COLUMNS:
        direction = "ascending" if sort == key else "descending" if sort == f"-{key}" else ""
        target = f"-{key}" if sort == key else key
        columns[key] = {"label": label, "href": f"?{base}&sort={target}" if base else f"?sort={target}"}
        columns[key]["direction"] = direction
    return columns


def _method_groups(mailbox: Mailbox) -> list[dict[str, Any]]:
    """The channels grouped by method, in channel order: [{method, label, channels: [(channel, label)]}]."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    for channel in Channel:
        groups.setdefault(mailbox.method(channel.value), []).append((channel.value, CHANNEL_SHORT[channel]))
    return [
        {"method": method, "label": METHOD_SHORT.get(method, method), "channels": channels}
        for method, channels in groups.items()
    ]


@role_required(*ADMIN)
def mailbox_list(request: HttpRequest) -> HttpResponse:
    orgs = org_ids(request.user, ADMIN)
    form = MailboxFilterForm(request.GET, org_ids=orgs)
    mailboxes = form.apply(Mailbox.objects.for_list().filter(organization_id__in=orgs))
    sort = (form.cleaned_data.get("sort") if form.is_valid() else "") or "address"
    page = Paginator(mailboxes, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    for mailbox in page.object_list:
        mailbox.method_groups = _method_groups(mailbox)
    query = request.GET.copy()
    query.pop("page", None)
    matching = [("all_matching", "1")]
    if form.is_valid():  # else the list ignores the filter, and so does the action
        matching += [(name, value) for name in bulk.FILTER_FIELDS if (value := request.GET.get(name))]
    matching.append(("next", request.get_full_path()))
    ctx = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "sort": sort,
        "columns": _sort_columns(request, sort),
        "matching_query": urlencode(matching),
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


def _saved_message(form: MailboxForm, mailbox: Mailbox, first: str, address_changed: bool, tests_reset: bool) -> str:
    """What a save did besides saving: a moved address, approval pending again, tests to run again."""
    parts = [first]
    if form.remap_from is not None:
        parts.append(
            _("Its address was moved here from the mailbox of %(owner)s, which has no address now.")
            % {"owner": form.remap_from.owner_name}
        )
    if address_changed and mailbox.approval_status == ApprovalStatus.PENDING:
        parts.append(_("Its address changed, so approval is pending again."))
    if tests_reset:
        parts.append(_("Its connection changed, so its tests were reset: run Test & Enable again."))
    return " ".join(parts)


def _was_tested(mailbox: Mailbox) -> bool:
    if mailbox.test_overall != TestStatus.NOT_RUN:
        return True
    return any(
        getattr(mailbox, f"test_{channel}") != TestStatus.NOT_RUN or getattr(mailbox, f"enabled_{channel}")
        for channel in Channel.values
    )


@sensitive_post_parameters(*SECRET_POST_PARAMETERS)
@sensitive_variables()
@role_required(*ADMIN)
def mailbox_create(request: HttpRequest) -> HttpResponse:
    form = MailboxForm(request.POST or None, admin_org_ids=org_ids(request.user, ADMIN))
    if request.method == "POST" and form.is_valid():
        mailbox = _save_mailbox(request, form)
        if mailbox is not None:
            text = _("Mailbox %(mailbox)s created.") % {"mailbox": mailbox}
            messages.success(request, _saved_message(form, mailbox, text, False, False))
            return redirect("mailbox-detail", mailbox.pk)
    return render(request, "mailboxes/mailbox_form.html", {"form": form})


@role_required(*ADMIN)
def mailbox_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk)
    ctx = {**mailbox_sync_context(mailbox), **mail_tracking(mailbox, request.user), "history": _history(mailbox)}
    return render(request, "mailboxes/mailbox_detail.html", ctx)


@sensitive_post_parameters(*SECRET_POST_PARAMETERS)
@sensitive_variables()
@role_required(*ADMIN)
def mailbox_edit(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk)
    form = MailboxForm(request.POST or None, instance=mailbox, admin_org_ids=org_ids(request.user, ADMIN))
    if request.method == "POST" and form.is_valid():
        # Before saving: the save makes the new values the loaded ones.
        address_changed = bool(mailbox.address) and mailbox.address_changed
        tests_reset = mailbox.connection_changed and _was_tested(mailbox)
        if _save_mailbox(request, form) is not None:
            text = _("Mailbox %(mailbox)s saved.") % {"mailbox": mailbox}
            messages.success(request, _saved_message(form, mailbox, text, address_changed, tests_reset))
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


@require_POST
@role_required(*APPROVERS)
def mailbox_approve(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk, APPROVERS)
    try:
        mailbox.approve(Actor.from_request(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Email address %(address)s approved.") % {"address": mailbox.address})
    return _next_or(request, "approvals")


@role_required(*APPROVERS)
def mailbox_reject_confirm(request: HttpRequest, pk: Any) -> HttpResponse:
    """The page that asks before a rejection, with room for the reason; it posts to mailbox-reject."""
    mailbox = get_mailbox_for_user(request, pk, APPROVERS)
    action = reverse("mailbox-reject", args=[mailbox.pk])
    return _reject_page(request, bulk.RejectForm(), bulk.Selection([mailbox]), action, _safe_next(request, request.GET))


def _reject_page(
    request: HttpRequest, form: bulk.RejectForm, selection: bulk.Selection, action: str, target: str
) -> HttpResponse:
    """The confirmation of a rejection: the addresses, the reason, Reject and Cancel."""
    ctx = {
        "mailboxes": selection.mailboxes[:CONFIRM_LISTED],
        "count": selection.count,
        "all_matching": selection.all_matching,
        "action": action,
        "hidden": selection.hidden,
        "form": form,
        "next": target,
        "back": target or reverse("approvals"),
    }
    return render(request, "mailboxes/reject_confirm.html", ctx)


@require_POST
@role_required(*APPROVERS)
def mailbox_reject(request: HttpRequest, pk: Any) -> HttpResponse:
    """Reject, once confirmed; an unconfirmed post (a Reject button) is sent to the confirmation page."""
    mailbox = get_mailbox_for_user(request, pk, APPROVERS)
    if not request.POST.get("confirmed"):
        return _to_confirmation("mailbox-reject-confirm", [], request, mailbox.pk)
    form = bulk.RejectForm(request.POST)
    if not form.is_valid():
        action = reverse("mailbox-reject", args=[mailbox.pk])
        return _reject_page(request, form, bulk.Selection([mailbox]), action, _safe_next(request, request.POST))
    try:
        mailbox.reject(Actor.from_request(request), form.cleaned_data["reason"])
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Email address %(address)s rejected.") % {"address": mailbox.address})
    return _next_or(request, "approvals")


def _to_confirmation(name: str, hidden: list[tuple[str, str]], request: HttpRequest, *args: Any) -> HttpResponse:
    """Send an action's first post on to its confirmation page, with the selection and where to go after."""
    query = list(hidden)
    if target := _safe_next(request, request.POST):
        query.append(("next", target))
    return redirect(_with_query(reverse(name, args=args), urlencode(query)))


# Approvals


@role_required(*APPROVERS)
def approvals(request: HttpRequest) -> HttpResponse:
    status = bulk.approval_tab(request.GET.get("status"))
    orgs = org_ids(request.user, APPROVERS)
    mailboxes = (
        Mailbox.objects.for_list().filter(organization_id__in=orgs, approval_status=status).order_by("address", "id")
    )
    page = Paginator(mailboxes, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    counts = dict(
        Mailbox.objects.filter(organization_id__in=orgs)
        .order_by()
        .values_list("approval_status")
        .annotate(n=Count("id"))
    )
    tabs = [(value, ApprovalStatus(value).label, counts.get(value, 0)) for value in bulk.APPROVAL_TABS]
    ctx = {
        "page": page,
        "status": status,
        "tabs": tabs,
        "admin_orgs": set(org_ids(request.user, ADMIN)),
    }
    return render(request, "mailboxes/approvals.html", ctx)


def _nothing_selected(request: HttpRequest, selection: bulk.Selection, fallback: str) -> HttpResponse | None:
    if selection.count:
        return None
    if selection.all_matching:
        messages.error(request, _("No mailbox matches any more: nothing was changed."))
    else:
        messages.error(request, _("Select at least one mailbox."))
    return _next_or(request, fallback)


def _approve_or_reject(request: HttpRequest, selection: bulk.Selection, approve: bool, reason: str = "") -> None:
    """Approve or reject every selected mailbox, or none: all or nothing."""
    actor = Actor.from_request(request)
    try:
        with transaction.atomic():
            for mailbox in selection.mailboxes:
                mailbox.approve(actor) if approve else mailbox.reject(actor, reason)
    except ValidationError as error:
        # For example an address released by a remap since the page was loaded: all or nothing.
        text = _("%(mailbox)s: %(error)s Nothing was changed.")
        messages.error(request, text % {"mailbox": mailbox, "error": " ".join(error.messages)})
        return
    n, names = selection.count, bulk.name_list(m.address for m in selection.mailboxes)
    text = (
        ngettext("Approved %(n)d email address: %(names)s.", "Approved %(n)d email addresses: %(names)s.", n)
        if approve
        else ngettext("Rejected %(n)d email address: %(names)s.", "Rejected %(n)d email addresses: %(names)s.", n)
    )
    messages.success(request, text % {"n": n, "names": names})


@require_POST
@role_required(*APPROVERS)
def approvals_approve(request: HttpRequest) -> HttpResponse:
    selection = bulk.approval_selection(request, request.POST)
    if refused := _nothing_selected(request, selection, "approvals"):
        return refused
    _approve_or_reject(request, selection, approve=True)
    return _next_or(request, "approvals")


@role_required(*APPROVERS)
def approvals_reject_confirm(request: HttpRequest) -> HttpResponse:
    """The page that asks before rejecting the selection, with room for the reason; it posts to approvals-reject."""
    selection = bulk.approval_selection(request, request.GET)
    if not selection.count:
        messages.error(request, _("Select at least one mailbox."))
        return redirect(_safe_next(request, request.GET) or reverse("approvals"))
    action, target = reverse("approvals-reject"), _safe_next(request, request.GET)
    return _reject_page(request, bulk.RejectForm(), selection, action, target)


@require_POST
@role_required(*APPROVERS)
def approvals_reject(request: HttpRequest) -> HttpResponse:
    """Reject the selection, once confirmed; an unconfirmed post is sent to the confirmation page."""
    selection = bulk.approval_selection(request, request.POST)
    if refused := _nothing_selected(request, selection, "approvals"):
        return refused
    if not request.POST.get("confirmed"):
        return _to_confirmation("approvals-reject-confirm", selection.hidden, request)
    form = bulk.RejectForm(request.POST)
    if not form.is_valid():
        action, target = reverse("approvals-reject"), _safe_next(request, request.POST)
        return _reject_page(request, form, selection, action, target)
    _approve_or_reject(request, selection, approve=False, reason=form.cleaned_data["reason"])
    return _next_or(request, "approvals")


# Bulk: change the server profile


@role_required(*ADMIN)
def mailboxes_change_profile(request: HttpRequest) -> HttpResponse:
    """Move mailboxes to another server profile of their organization.

    1. A post from the list (no new profile chosen yet) goes on to this page as a GET,
       the selection in the query string.
    2. GET: the confirmation page lists the mailboxes and offers the profiles of their
       organization (one organization at a time).
    3. POST with the new profile: move them all or none (Mailbox.change_profile), audited per mailbox.
    """
    data = request.POST if request.method == "POST" else request.GET
    selection = bulk.mailbox_selection(request, data)
    if not selection.count:
        messages.error(request, _("Select at least one mailbox."))
        return redirect(_safe_next(request, data) or reverse("mailbox-list"))
    if request.method == "POST" and "new_profile" not in request.POST:
        return _to_confirmation("mailboxes-change-profile", selection.hidden, request)
    target = _safe_next(request, data)
    organizations = {m.organization_id for m in selection.mailboxes}
    if len(organizations) > 1:
        messages.error(request, _("The selected mailboxes belong to several organizations: select those of one."))
        return redirect(target or reverse("mailbox-list"))
    current = {m.profile_id for m in selection.mailboxes}
    form = bulk.ChangeProfileForm(
        request.POST if request.method == "POST" else None,
        organization_id=organizations.pop(),
        exclude=current if len(current) == 1 else (),
    )
    if request.method == "POST" and form.is_valid():
        profile = form.cleaned_data["new_profile"]
        try:
            moved = Mailbox.change_profile(selection.mailboxes, profile, Actor.from_request(request))
        except ValidationError as refused:
            messages.error(request, _("Nothing was changed. %(problems)s") % {"problems": _problems(refused.messages)})
        else:
            messages.success(request, _profile_changed_message(profile, moved, selection.count))
            return redirect(target or _with_query(reverse("mailbox-list"), urlencode({"profile": profile.pk})))
    ctx = {
        "mailboxes": selection.mailboxes[:CONFIRM_LISTED],
        "count": selection.count,
        "all_matching": selection.all_matching,
        "hidden": selection.hidden,
        "form": form,
        "next": target,
        "back": target or reverse("mailbox-list"),
    }
    return render(request, "mailboxes/change_profile.html", ctx)


def _problems(problems: list[str]) -> str:
    """The first few problems, and how many more there are."""
    text = " ".join(problems[: bulk.NAMES_SHOWN])
    rest = len(problems) - bulk.NAMES_SHOWN
    if rest > 0:
        text += " " + ngettext("And %(n)d more mailbox cannot move.", "And %(n)d more mailboxes cannot move.", rest) % {
            "n": rest
        }
    return text


def _profile_changed_message(profile: EmailServerProfile, moved: list[Mailbox], count: int) -> str:
    if not moved:
        return _("Nothing was changed: the selected mailboxes use “%(profile)s” already.") % {"profile": profile}
    n = len(moved)
    text = ngettext(
        "Moved %(n)d mailbox to the server profile “%(profile)s”: %(names)s. "
        "Its tests were reset: run Test & Enable again.",
        "Moved %(n)d mailboxes to the server profile “%(profile)s”: %(names)s. "
        "Their tests were reset: run Test & Enable again.",
        n,
    ) % {"n": n, "profile": profile, "names": bulk.name_list(moved)}
    if count > n:
        text += " " + ngettext("%(n)d used that profile already.", "%(n)d used that profile already.", count - n) % {
            "n": count - n
        }
    return text
