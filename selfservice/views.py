"""Self-service: every signed-in member's own mailbox, sync filters, settings and conflicts.

Small views, one URL per action: each change is a POST that fetches the person's own object
through ``selfservice.access``, changes it through the model (which audits), and redirects.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from audit.log import Actor
from audit.models import AuditEvent
from clients.models import ClientConflict, ClientError, ConflictClosed, RecordGone
from clients.models import ConflictStatus as ClientConflictStatus
from crm.access import visible_records
from crm.filters import DEFAULT_FILTERS, preview, reset_filters
from crm.folders import (
    CHOICES_SHOWN,
    folders_unsupported,
    mail_tracking,
    record_label,
    track_folder,
    tracked_folders_for,
    untrack_folder,
)
from crm.models import SYNCED_MODELS, FilterOperator, RecordType, SyncFilter, TrackedFolder
from mailboxes.access import ADMIN, org_ids
from mailboxes.models import ApprovalStatus, Channel, Mailbox, OwnerType, TestStatus
from selfservice.access import (
    MEMBER_ROLES,
    admin_organizations,
    admin_required,
    get_filter_for_user,
    get_own_client_conflict,
    get_own_conflict,
    get_own_folder,
    get_own_mailbox,
    member_organizations,
    member_required,
    own_mailbox,
)
from selfservice.forms import (
    FilterForm,
    MyMailboxForm,
    PreviewForm,
    ResetFiltersForm,
    SyncOrganizationForm,
    TrackedFolderForm,
    TrackingRuleForm,
)
from selfservice.services import (
    CRM,
    MAILBOX,
    RuleWords,
    channel_states,
    client_conflict_rows,
    conflict_rows,
    editor_data,
    error_advice,
    resolve_conflict,
    setup_organization,
    setup_profile,
)
from syncjobs.jobs import enqueue_test
from syncjobs.models import Conflict, ConflictStatus
from syncjobs.views import status_context

HISTORY_LIMIT = 50
CONFLICTS_SHOWN = 100
PREVIEW_SHOWN = 10
# A person's new filter starts with their own records (the condition their filters must keep).
MY_RECORDS = {"match": "all", "rules": [{"field": "owner", "operator": FilterOperator.IS_ME.value, "value": None}]}


# My mailbox --------------------------------------------------------------------------------


def _status(mailbox: Mailbox) -> dict[str, Any]:
    return {**status_context(mailbox), "channels": channel_states(mailbox), "error_advice": error_advice(mailbox)}


@require_GET
@member_required
def my_mailbox(request: HttpRequest) -> HttpResponse:
    mailbox = own_mailbox(request)
    if mailbox is None:
        organization = setup_organization(request.user)
        ctx = {"subnav": "mailbox", "organization": organization, "setup_profile": setup_profile(organization)}
        return render(request, "selfservice/mailbox.html", ctx)
    ctx = {"subnav": "mailbox", **_status(mailbox), **mail_tracking(mailbox, request.user)}
    return render(request, "selfservice/mailbox.html", ctx)


@require_GET
@member_required
def mailbox_status(request: HttpRequest) -> HttpResponse:
    """The status fragment the page polls while a test or a run of the mailbox is queued or running."""
    return render(request, "selfservice/_mailbox_status.html", _status(get_own_mailbox(request)))


@require_POST
@member_required
def mailbox_test(request: HttpRequest) -> HttpResponse:
    mailbox = get_own_mailbox(request)
    enqueue_test(mailbox, Actor.from_request(request))
    messages.success(request, _("Test & Enable of your mailbox is queued: its progress shows below."))
    return redirect("my-mailbox")


def _save_mailbox(request: HttpRequest, form: MyMailboxForm) -> Mailbox | None:
    """Save as an administrator's edit does (a changed address back to approval, a changed
    connection back to untested); None if the database refused."""
    mailbox = form.save(commit=False)
    try:
        with transaction.atomic():
            mailbox.save_from_form(Actor.from_request(request))
    except IntegrityError:
        form.add_error(None, _("Another change was saved at the same time; check the address, then try again."))
        return None
    return mailbox


def _was_tested(mailbox: Mailbox) -> bool:
    return mailbox.test_overall != TestStatus.NOT_RUN or any(
        getattr(mailbox, f"test_{channel}") != TestStatus.NOT_RUN or getattr(mailbox, f"enabled_{channel}")
        for channel in Channel.values
    )


def _saved_message(mailbox: Mailbox, first: str, address_changed: bool, tests_reset: bool) -> str:
    parts = [first]
    if address_changed and mailbox.approval_status == ApprovalStatus.PENDING:
        parts.append(
            _(
                "Your organization approves every email address: your mailbox syncs once an administrator "
                "has approved this one."
            )
        )
    if tests_reset:
        parts.append(_("Its connection changed, so its tests were reset: run Test & Enable again."))
    return " ".join(parts)


@sensitive_post_parameters("password")
@sensitive_variables()
@member_required
def mailbox_setup(request: HttpRequest) -> HttpResponse:
    """Set up the person's own mailbox with the server profile their administrator chose."""
    if own_mailbox(request) is not None:
        return redirect("my-mailbox-edit")
    organization = setup_organization(request.user)
    profile = setup_profile(organization)
    if profile is None:
        messages.error(request, _("Your organization has no default server profile: ask an administrator."))
        return redirect("my-mailbox")
    mailbox = Mailbox(organization=organization, owner_type=OwnerType.USER, user=request.user, profile=profile)
    form = MyMailboxForm(request.POST or None, instance=mailbox)
    if request.method == "POST" and form.is_valid():
        if _save_mailbox(request, form) is not None:
            text = _("Your mailbox %(mailbox)s is set up.") % {"mailbox": mailbox}
            messages.success(request, _saved_message(mailbox, text, True, False))
            return redirect("my-mailbox")
    return render(request, "selfservice/mailbox_form.html", {"subnav": "mailbox", "form": form, "mailbox": mailbox})


@sensitive_post_parameters("password")
@sensitive_variables()
@member_required
def mailbox_edit(request: HttpRequest) -> HttpResponse:
    mailbox = get_own_mailbox(request)
    form = MyMailboxForm(request.POST or None, instance=mailbox)
    if request.method == "POST" and form.is_valid():
        # Before saving: the save makes the new values the loaded ones.
        address_changed = mailbox.address_changed
        tests_reset = mailbox.connection_changed and _was_tested(mailbox)
        if _save_mailbox(request, form) is not None:
            text = _("Your mailbox %(mailbox)s is saved.") % {"mailbox": mailbox}
            messages.success(request, _saved_message(mailbox, text, address_changed, tests_reset))
            return redirect("my-mailbox")
    ctx = {"subnav": "mailbox", "form": form, "mailbox": mailbox, "editing": True}
    return render(request, "selfservice/mailbox_form.html", ctx)


# My tracked folders ------------------------------------------------------------------------


def _folders_page(request: HttpRequest, mailbox: Mailbox | None, form: TrackedFolderForm | None = None) -> HttpResponse:
    ctx: dict[str, Any] = {
        "subnav": "folders",
        "mailbox": mailbox,
        "limit": TrackedFolder.MAX_PER_MAILBOX,
        "choices_shown": CHOICES_SHOWN,
    }
    if mailbox is not None:
        search = (request.POST if form is not None else request.GET).get("q", "").strip()
        folders = tracked_folders_for(mailbox, request.user)
        ctx |= {
            "folders": folders,
            "full": len(folders) >= TrackedFolder.MAX_PER_MAILBOX,
            "unsupported": folders_unsupported(mailbox),
            "search": search,
            "form": form or TrackedFolderForm(user=request.user, mailbox=mailbox, search=search),
        }
    return render(request, "selfservice/folders.html", ctx)


@require_GET
@member_required
def folder_list(request: HttpRequest) -> HttpResponse:
    return _folders_page(request, own_mailbox(request))


@require_POST
@member_required
def folder_add(request: HttpRequest) -> HttpResponse:
    mailbox = get_own_mailbox(request)
    if reason := folders_unsupported(mailbox):
        messages.error(request, reason)
        return redirect("my-folders")
    form = TrackedFolderForm(request.POST, user=request.user, mailbox=mailbox, search=request.POST.get("q", ""))
    if form.is_valid():
        data = form.cleaned_data
        try:
            folder = track_folder(mailbox, data["folder_name"], data["regarding"], Actor.from_request(request))
        except ValidationError as error:
            form.add_error(None, error)
        else:
            text = _("The folder “%(folder)s” is tracked regarding %(record)s. This takes effect at the next sync.")
            messages.success(request, text % {"folder": folder.folder_name, "record": record_label(folder.regarding)})
            return redirect("my-folders")
    return _folders_page(request, mailbox, form)


@member_required
def folder_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks; POST stops tracking the folder."""
    folder = get_own_folder(request, pk)
    if request.method == "POST":
        untrack_folder(folder, Actor.from_request(request))
        text = _("The folder “%(folder)s” is no longer tracked. The emails tracked from it stay in the CRM.")
        messages.success(request, text % {"folder": folder.folder_name})
        return redirect("my-folders")
    ctx = {"subnav": "folders", "folder": folder, "record": record_label(folder.regarding)}
    return render(request, "selfservice/folder_remove.html", ctx)


# My sync filters ---------------------------------------------------------------------------


def _organizations(request: HttpRequest, template: bool) -> Any:
    return admin_organizations(request.user) if template else member_organizations(request.user)


def _list_url(sync_filter: SyncFilter) -> str:
    return reverse("my-filter-templates" if sync_filter.user_id is None else "my-filters")


def _type_label(record_type: str) -> str:
    return capfirst(SYNCED_MODELS[record_type]._meta.verbose_name_plural)


def _filter_groups(filters: Any) -> list[dict[str, Any]]:
    """The filters by record type, each with its conditions in words."""
    words = RuleWords()
    groups = []
    for record_type in RecordType.values:
        found = [f for f in filters if f.record_type == record_type]
        for sync_filter in found:
            sync_filter.description = words.describe(record_type, sync_filter.rules)
        groups.append(
            {
                "record_type": record_type,
                "label": _type_label(record_type),
                "filters": found,
                "enabled": sum(1 for f in found if f.enabled),
            }
        )
    return groups


def _filter_list(request: HttpRequest, filters: Any, template: bool, organizations: Any) -> dict[str, Any]:
    filters = list(filters.select_related("organization").order_by("organization__name", "name", "id"))
    return {
        "subnav": "filters",
        "template": template,
        "groups": _filter_groups(filters),
        "several_organizations": len(organizations) > 1,
        "is_admin": bool(org_ids(request.user, ADMIN)),
    }


@require_GET
@member_required
def filter_list(request: HttpRequest) -> HttpResponse:
    organizations = org_ids(request.user, MEMBER_ROLES)
    filters = SyncFilter.objects.filter(user=request.user, organization_id__in=organizations)
    return render(request, "selfservice/filters.html", _filter_list(request, filters, False, organizations))


@require_GET
@admin_required
def template_list(request: HttpRequest) -> HttpResponse:
    organizations = org_ids(request.user, ADMIN)
    filters = SyncFilter.objects.filter(user=None, organization_id__in=organizations)
    ctx = _filter_list(request, filters, True, organizations)
    ctx["reset_form"] = ResetFiltersForm(organization_ids=organizations)
    return render(request, "selfservice/filters.html", ctx)


def _editor_context(request: HttpRequest, form: Any, sync_filter: SyncFilter, template: bool) -> dict[str, Any]:
    adding = sync_filter._state.adding
    organizations = _organizations(request, template)
    if adding:
        title = _("New sync filter template") if template else _("New sync filter")
    else:
        title = _("Edit the sync filter “%(name)s”") % {"name": sync_filter.name}
    history = AuditEvent.objects.for_object(sync_filter)[:HISTORY_LIMIT] if template and not adding else None
    editor = editor_data(request.user, [o.pk for o in organizations])
    return {
        "subnav": "filters",
        "form": form,
        "sync_filter": None if adding else sync_filter,
        "template": template,
        "title": title,
        "form_action": reverse(
            ("my-filter-template-create" if template else "my-filter-create") if adding else "my-filter-edit",
            args=[] if adding else [sync_filter.pk],
        ),
        "record_type_label": None if adding else _type_label(sync_filter.record_type),
        "editor": editor,
        # Without JavaScript: what the JSON may say.
        "reference": [
            (RecordType(record_type).label, fields)
            for record_type, fields in editor["record_types"].items()
            if adding or record_type == sync_filter.record_type
        ],
        "history": history,
    }


def _filter_form(request: HttpRequest, sync_filter: SyncFilter, template: bool) -> HttpResponse:
    organizations = _organizations(request, template)
    initial: dict[str, Any] = {}
    if sync_filter._state.adding and request.GET.get("record_type") in RecordType.values:
        initial["record_type"] = request.GET["record_type"]
    if sync_filter._state.adding and not template:
        initial["rules"] = MY_RECORDS
    form = FilterForm(request.POST or None, instance=sync_filter, organizations=organizations, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = form.save(commit=False)
        saved.save_audited(Actor.from_request(request))
        text = (
            _("Template “%(name)s” saved. Members get it when they join, or when their filters are reset.")
            if template
            else _("Sync filter “%(name)s” saved. It takes effect at the next sync of your mailbox.")
        )
        messages.success(request, text % {"name": saved.name})
        return redirect(_list_url(saved))
    return render(request, "selfservice/filter_form.html", _editor_context(request, form, sync_filter, template))


@member_required
def filter_create(request: HttpRequest) -> HttpResponse:
    return _filter_form(request, SyncFilter(user=request.user), template=False)


@admin_required
def template_create(request: HttpRequest) -> HttpResponse:
    return _filter_form(request, SyncFilter(user=None), template=True)


@member_required
def filter_edit(request: HttpRequest, pk: Any) -> HttpResponse:
    sync_filter = get_filter_for_user(request, pk)
    return _filter_form(request, sync_filter, template=sync_filter.user_id is None)


def _preview_result(request: HttpRequest, form: PreviewForm, sync_filter: SyncFilter | None) -> dict[str, Any]:
    """The preview's count and first records, or the errors that stand in the way."""
    if not form.is_valid():
        errors = []
        for name, found in form.errors.items():
            label = form.fields[name].label if name in form.fields and name != "rules" else None
            errors += [f"{label}: {message}" if label else message for message in found]
        return {"errors": errors}
    organization = sync_filter.organization if sync_filter else form.cleaned_data["organization"]
    record_type = form.record_type or form.cleaned_data["record_type"]
    model = SYNCED_MODELS[record_type]
    try:
        count, records = preview(
            record_type,
            form.cleaned_data["rules"],
            request.user,
            organization,
            records=visible_records(request.user, model).select_related("owner"),
            limit=PREVIEW_SHOWN,
        )
    except ValidationError as error:
        return {"errors": error.messages}
    rows = [
        {
            "name": str(obj),
            "url": reverse(f"{model._meta.model_name}-detail", args=[obj.pk]),
            "owner": obj.owner.get_full_name() or obj.owner.get_username(),
            "updated": obj.updated_at,
        }
        for obj in records
    ]
    return {"count": count, "rows": rows, "more": count - len(rows), "type_label": _type_label(record_type)}


@require_POST
@member_required
def filter_preview(request: HttpRequest) -> HttpResponse:
    """How many of the records the person may see the rules select, and the first ten.

    The editor's script posts the form here with ``fragment`` and shows the fragment; the
    Preview button without JavaScript posts the same form and gets the editor page again,
    with the rules as typed and the preview beside them.
    """
    sync_filter = get_filter_for_user(request, pk) if (pk := request.POST.get("filter")) else None
    template = sync_filter.user_id is None if sync_filter else request.POST.get("template") == "1"
    if template and not org_ids(request.user, ADMIN):
        raise PermissionDenied
    organizations = _organizations(request, template)
    owner = None if template else request.user
    form = PreviewForm(request.POST, organizations=organizations, owner=owner, sync_filter=sync_filter)
    result = _preview_result(request, form, sync_filter)
    if request.POST.get("fragment"):
        return render(request, "selfservice/_preview.html", result)
    instance = sync_filter or SyncFilter(user=None if template else request.user)
    initial = {name: request.POST.get(name, "") for name in ("organization", "record_type", "name", "rules")}
    initial["enabled"] = "enabled" in request.POST
    editor = FilterForm(instance=instance, organizations=organizations, initial=initial)
    ctx = {**_editor_context(request, editor, instance, template), "preview": result}
    return render(request, "selfservice/filter_form.html", ctx)


def _set_enabled(request: HttpRequest, pk: Any, enabled: bool) -> HttpResponse:
    sync_filter = get_filter_for_user(request, pk)
    if sync_filter.enabled != enabled:
        sync_filter.enabled = enabled
        sync_filter.save_audited(Actor.from_request(request), update_fields=["enabled", "updated"])
    text = (
        _("“%(name)s” is active. It takes effect at the next sync.")
        if enabled
        else _("“%(name)s” is inactive. It takes effect at the next sync.")
    )
    messages.success(request, text % {"name": sync_filter.name})
    return redirect(_list_url(sync_filter))


@require_POST
@member_required
def filter_activate(request: HttpRequest, pk: Any) -> HttpResponse:
    return _set_enabled(request, pk, True)


@require_POST
@member_required
def filter_deactivate(request: HttpRequest, pk: Any) -> HttpResponse:
    return _set_enabled(request, pk, False)


@member_required
def filter_delete(request: HttpRequest, pk: Any) -> HttpResponse:
    """GET asks; POST deletes."""
    sync_filter = get_filter_for_user(request, pk)
    if request.method == "POST":
        sync_filter.delete_audited(Actor.from_request(request))
        text = _("“%(name)s” is deleted. It takes effect at the next sync.")
        messages.success(request, text % {"name": sync_filter.name})
        return redirect(_list_url(sync_filter))
    ctx = {
        "subnav": "filters",
        "sync_filter": sync_filter,
        "description": RuleWords().describe(sync_filter.record_type, sync_filter.rules),
        "back": _list_url(sync_filter),
    }
    return render(request, "selfservice/filter_delete.html", ctx)


@admin_required
def template_reset(request: HttpRequest) -> HttpResponse:
    """Reset a member's filters to the organization's templates: GET asks, POST resets."""
    organizations = org_ids(request.user, ADMIN)
    form = ResetFiltersForm(request.POST if request.method == "POST" else request.GET, organization_ids=organizations)
    if not form.is_valid():
        messages.error(request, _("Choose a member of an organization you administer."))
        return redirect("my-filter-templates")
    membership = form.cleaned_data["membership"]
    user, organization = membership.user, membership.organization
    name = user.get_full_name() or user.get_username()
    if request.method == "POST":
        deleted, created = reset_filters(user, organization, Actor.from_request(request))
        text = _("The sync filters of %(name)s in %(organization)s are reset: %(deleted)d deleted, %(created)d copied.")
        values = {"name": name, "organization": organization, "deleted": deleted, "created": len(created)}
        messages.success(request, text % values)
        return redirect("my-filter-templates")
    templates = list(SyncFilter.objects.filter(user=None, organization=organization).order_by("record_type", "name"))
    ctx = {
        "subnav": "filters",
        "membership": membership,
        "name": name,
        "current": list(
            SyncFilter.objects.filter(user=user, organization=organization).order_by("record_type", "name")
        ),
        "templates": [t.name for t in templates] or [f["name"] for f in DEFAULT_FILTERS],
        "uses_defaults": not templates,
    }
    return render(request, "selfservice/reset_confirm.html", ctx)


# My settings -------------------------------------------------------------------------------


def _settings_page(request: HttpRequest, **forms: Any) -> HttpResponse:
    mailbox = own_mailbox(request)
    ctx = {
        "subnav": "settings",
        "mailbox": mailbox,
        "tracking_form": forms.get("tracking_form") or (TrackingRuleForm(instance=mailbox) if mailbox else None),
        "organization_form": forms.get("organization_form") or SyncOrganizationForm(user=request.user),
    }
    return render(request, "selfservice/settings.html", ctx)


@require_GET
@member_required
def settings_page(request: HttpRequest) -> HttpResponse:
    return _settings_page(request)


@require_POST
@member_required
def tracking_rule(request: HttpRequest) -> HttpResponse:
    mailbox = get_own_mailbox(request)
    form = TrackingRuleForm(request.POST, instance=mailbox)
    if not form.is_valid():
        return _settings_page(request, tracking_form=form)
    if form.has_changed():
        mailbox.save_audited(Actor.from_request(request), update_fields=["tracking_rule", "updated"])
    text = _("Your mailbox tracks: %(rule)s. This takes effect at the next sync.")
    messages.success(request, text % {"rule": mailbox.get_tracking_rule_display()})
    return redirect("my-settings")


@require_POST
@member_required
def sync_organization(request: HttpRequest) -> HttpResponse:
    form = SyncOrganizationForm(request.POST, user=request.user)
    if not form.is_valid():
        return _settings_page(request, organization_form=form)
    membership = form.cleaned_data["membership"]
    membership.make_synchronizing(Actor.from_request(request))
    text = _("%(organization)s is your synchronizing organization. This takes effect at the next sync.")
    messages.success(request, text % {"organization": membership.organization})
    return redirect("my-settings")


# My conflicts ------------------------------------------------------------------------------


@require_GET
@member_required
def conflict_list(request: HttpRequest) -> HttpResponse:
    conflicts = list(
        Conflict.objects.filter(
            mailbox__user_id=request.user.pk, mailbox__owner_type=OwnerType.USER, status=ConflictStatus.OPEN
        ).select_related("mailbox")[:CONFLICTS_SHOWN]
    )
    by_type: dict[str, set[Any]] = {}
    for conflict in conflicts:
        by_type.setdefault(conflict.record_type, set()).add(conflict.crm_id)
    names: dict[tuple[str, str], str] = {}
    visible: set[tuple[str, str]] = set()
    for record_type, ids in by_type.items():
        model = SYNCED_MODELS.get(record_type)
        if model is None:
            continue
        for obj in model.all_objects.filter(pk__in=ids):
            names[(record_type, str(obj.pk))] = str(obj)
        for pk in visible_records(request.user, model).filter(pk__in=ids).values_list("pk", flat=True):
            visible.add((record_type, str(pk)))
    for conflict in conflicts:
        key = (conflict.record_type, str(conflict.crm_id))
        conflict.record_name = names.get(key, "")
        model = SYNCED_MODELS.get(conflict.record_type)
        conflict.record_url = (
            reverse(f"{model._meta.model_name}-detail", args=[conflict.crm_id]) if key in visible and model else ""
        )
        conflict.rows = conflict_rows(conflict)
    ctx = {"subnav": "conflicts", "conflicts": conflicts, "client_conflicts": _client_conflicts(request)}
    return render(request, "selfservice/conflicts.html", ctx)


def _client_conflicts(request: HttpRequest) -> list[ClientConflict]:
    """The person's open client conflicts, each with its record (if it is still there and theirs
    to see), a link to it, and the fields side by side."""
    conflicts = list(
        ClientConflict.objects.filter(user_id=request.user.pk, status=ClientConflictStatus.OPEN)
        .select_related("instance")
        .order_by("-created_at")[:CONFLICTS_SHOWN]
    )
    records: dict[tuple[str, str], Any] = {}
    for record_type in {c.record_type for c in conflicts}:
        model = SYNCED_MODELS.get(record_type)
        if model is None:
            continue
        ids = [c.record_id for c in conflicts if c.record_type == record_type]
        for obj in visible_records(request.user, model).filter(pk__in=ids):
            records[(record_type, str(obj.pk))] = obj
    for conflict in conflicts:
        obj = records.get((conflict.record_type, str(conflict.record_id)))
        conflict.record = obj
        conflict.record_url = reverse(f"{obj._meta.model_name}-detail", args=[obj.pk]) if obj is not None else ""
        conflict.rows = client_conflict_rows(conflict, obj)
    return conflicts


def _resolve(request: HttpRequest, pk: Any, side: str) -> HttpResponse:
    conflict = get_own_conflict(request, pk)
    if resolve_conflict(conflict, side, Actor.from_request(request)):
        text = (
            _("The CRM version is kept; the next sync carries it to your mailbox.")
            if side == CRM
            else _("The mailbox version is in the CRM record now.")
        )
        messages.success(request, text)
    else:
        messages.error(request, _("This conflict is closed already, or its record is gone."))
    return redirect("my-conflicts")


@require_POST
@member_required
def conflict_keep_crm(request: HttpRequest, pk: Any) -> HttpResponse:
    return _resolve(request, pk, CRM)


@require_POST
@member_required
def conflict_take_mailbox(request: HttpRequest, pk: Any) -> HttpResponse:
    return _resolve(request, pk, MAILBOX)


def _resolve_client(request: HttpRequest, pk: Any, keep: str) -> HttpResponse:
    conflict = get_own_client_conflict(request, pk)
    try:
        conflict.resolve(Actor.from_request(request), keep)
    except (ConflictClosed, RecordGone) as error:
        messages.warning(request, str(error))
    except ClientError as error:
        text = _("The client's version could not be applied: %(error)s")
        messages.error(request, text % {"error": error})
    else:
        text = (
            _("The CRM version is kept; your client gets it at its next sync.")
            if keep == "crm"
            else _("Your client's version is in the CRM record now.")
        )
        messages.success(request, text)
    return redirect("my-conflicts")


@require_POST
@member_required
def client_conflict_keep_crm(request: HttpRequest, pk: Any) -> HttpResponse:
    return _resolve_client(request, pk, "crm")


@require_POST
@member_required
def client_conflict_take_client(request: HttpRequest, pk: Any) -> HttpResponse:
    return _resolve_client(request, pk, "client")
