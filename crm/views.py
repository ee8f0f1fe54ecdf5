"""CRM record pages: one set of list, detail, create, edit and delete views for every record type.

Each URL passes the record type (``kind``) to the view; ``KINDS`` says per type which form,
columns, search fields and filters its pages use.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from crm.access import CRM_ROLES, get_record_for_user, visible_records
from crm.email_views import record_emails
from crm.forms import (
    AccountForm,
    AppointmentForm,
    ContactForm,
    LeadForm,
    RecordFilterForm,
    RecordForm,
    TaskForm,
)
from crm.models import Account, Appointment, Contact, CrmRecord, Lead, RecordType, Task
from mailboxes.access import ADMIN, org_ids, role_required
from mailboxes.models import Mailbox
from syncjobs.models import Conflict, ConflictStatus, ItemLink


@dataclass(frozen=True)
class Column:
    key: str  # an attribute of the record, or "__str__" for its name
    order: tuple[str, ...] = ()  # order_by fields; empty: not sortable
    label: Any = None  # default: the model field's verbose name


@dataclass(frozen=True)
class Kind:
    name: str  # URL names: "<name>-list", "<name>-detail", ...
    slug: str  # URL path segment
    model: type[CrmRecord]
    form: type[RecordForm]
    columns: tuple[Column, ...]
    search: tuple[str, ...]
    default_sort: str
    filters: tuple[str, ...] = ()  # fields with choices (or booleans) the list filters by
    related: tuple[str, ...] = ()  # foreign keys the list shows
    record_type: str = ""  # the synced type, for the sync state table

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name)

    @property
    def verbose_name_plural(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    @property
    def urls(self) -> dict[str, str]:
        """URL names for the templates: {% url kind.urls.detail record.pk %}."""
        return {action: f"{self.name}-{action}" for action in ("list", "create", "detail", "edit", "delete")}

    def header(self, column: Column) -> str:
        if column.label is not None:
            return str(column.label)
        if column.key == "__str__":
            return _("Name")
        return capfirst(self.model._meta.get_field(column.key).verbose_name)

    def order_by(self, sort: str) -> tuple[str, ...]:
        """The order_by fields for a sort key such as "name" or "-start"; unknown keys sort by default."""
        descending = sort.startswith("-")
        for column in self.columns:
            if column.order and column.key == sort.lstrip("-"):
                return tuple(f"-{f}" if descending else f for f in column.order)
        return self.order_by(self.default_sort)


OWNER = Column("owner", ("owner__username",))
UPDATED = Column("updated_at", ("updated_at",))

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="account",
            slug="accounts",
            model=Account,
            form=AccountForm,
            columns=(Column("name", ("name",)), Column("email", ("email",)), Column("phone"), OWNER, UPDATED),
            search=("name", "email", "phone"),
            default_sort="name",
        ),
        Kind(
            name="contact",
            slug="contacts",
            model=Contact,
            form=ContactForm,
            columns=(
                Column("__str__", ("last_name", "first_name")),
                Column("email", ("email",)),
                Column("account", ("account__name",)),
                Column("job_title", ("job_title",)),
                OWNER,
                UPDATED,
            ),
            search=("first_name", "last_name", "email", "job_title", "account__name"),
            default_sort="__str__",
            filters=("is_active",),
            related=("account",),
            record_type=RecordType.CONTACT,
        ),
        Kind(
            name="lead",
            slug="leads",
            model=Lead,
            form=LeadForm,
            columns=(
                Column("__str__", ("last_name", "first_name")),
                Column("company_name", ("company_name",)),
                Column("email", ("email",)),
                Column("status", ("status",)),
                OWNER,
                UPDATED,
            ),
            search=("first_name", "last_name", "company_name", "email"),
            default_sort="__str__",
            filters=("status",),
        ),
        Kind(
            name="appointment",
            slug="appointments",
            model=Appointment,
            form=AppointmentForm,
            columns=(
                Column("subject", ("subject",)),
                Column("start", ("start",)),
                Column("end", ("end",)),
                Column("location", ("location",)),
                Column("status", ("status",)),
                OWNER,
            ),
            search=("subject", "location", "description"),
            default_sort="-start",
            filters=("status",),
            record_type=RecordType.APPOINTMENT,
        ),
        Kind(
            name="task",
            slug="tasks",
            model=Task,
            form=TaskForm,
            columns=(
                Column("subject", ("subject",)),
                Column("due", ("due",)),
                Column("status", ("status",)),
                Column("priority", ("priority",)),
                OWNER,
            ),
            search=("subject", "description"),
            default_sort="due",
            filters=("status", "priority"),
            record_type=RecordType.TASK,
        ),
    )
}


def display(record: Any, key: str) -> str:
    """A field's value in words: choices by label, times in the portal's time zone, "—" when empty."""
    if key == "__str__":
        return str(record)
    value = getattr(record, key)
    field = record._meta.get_field(key)
    if field.choices:
        return str(getattr(record, f"get_{key}_display")())
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, datetime.datetime):
        return formats.date_format(timezone.localtime(value), "Y-m-d H:i")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, get_user_model()):
        return value.get_full_name() or value.get_username()
    return str(value)


def _link(record: Any) -> str | None:
    """The URL name of a related record's page, if it is a CRM record."""
    for kind in KINDS.values():
        if isinstance(record, kind.model):
            return kind.urls["detail"]
    return None


@role_required(*CRM_ROLES)
def record_list(request: HttpRequest, kind: str) -> HttpResponse:
    k = KINDS[kind]
    form = RecordFilterForm(request.GET, kind=k, user=request.user)
    records = form.apply(visible_records(request.user, k.model).select_related("owner", *k.related))
    page = Paginator(records, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    sort_query = query.copy()
    sort_query.pop("sort", None)
    ctx = {
        "kind": k,
        "form": form,
        "page": page,
        "headers": [(k.header(c), c.key if c.order else "") for c in k.columns],
        "rows": [(record, [display(record, c.key) for c in k.columns]) for record in page.object_list],
        "query": query.urlencode(),
        "sort_query": sort_query.urlencode(),
        "sort": request.GET.get("sort") or k.default_sort,
    }
    return render(request, "crm/record_list.html", ctx)


def _fields(k: Kind, record: Any) -> list[tuple[str, str, str | None, Any]]:
    """(label, value, URL name, pk) for the detail page: the form's fields but organization, owner, attendees."""
    rows = []
    for name in k.form._meta.fields:
        if name in ("organization", "owner", "attendees"):
            continue
        related = getattr(record, name) if record._meta.get_field(name).is_relation else None
        url = _link(related) if related is not None else None
        label = capfirst(record._meta.get_field(name).verbose_name)
        rows.append((label, display(record, name), url, related.pk if url else None))
    return rows


def _sync_rows(request: HttpRequest, k: Kind, record: Any) -> list[dict[str, Any]]:
    """One row per mailbox the record is linked to, or has open conflicts in."""
    links = (
        ItemLink.objects.filter(record_type=k.record_type, crm_id=record.pk)
        .select_related("mailbox", "mailbox__user")
        .order_by("mailbox__address", "mailbox_id")
    )
    conflicts = dict(
        Conflict.objects.filter(record_type=k.record_type, crm_id=record.pk, status=ConflictStatus.OPEN)
        .order_by()
        .values_list("mailbox_id")
        .annotate(n=Count("id"))
    )
    admin_orgs = set(org_ids(request.user, ADMIN))
    rows = [{"mailbox": link.mailbox, "link": link, "conflicts": conflicts.pop(link.mailbox_id, 0)} for link in links]
    # A conflict whose link is gone still needs someone's attention.
    for mailbox in Mailbox.objects.filter(pk__in=conflicts).order_by("address"):
        rows.append({"mailbox": mailbox, "link": None, "conflicts": conflicts[mailbox.pk]})
    for row in rows:
        row["can_open"] = row["mailbox"].organization_id in admin_orgs
    return rows


def _attendees(request: HttpRequest, record: Appointment) -> list[dict[str, Any]]:
    """Each attendee address with what it resolves to, and that record's page if the user may see it."""
    resolved = record.resolved_attendees()
    visible = {
        model: set(visible_records(request.user, model).filter(email__in=record.attendees).values_list("pk", flat=True))
        for model in (Contact, Lead)
    }
    rows = []
    for address, found in resolved:
        row: dict[str, Any] = {"address": address, "found": found, "url": None, "what": ""}
        if isinstance(found, Contact | Lead):
            row["what"] = capfirst(found._meta.verbose_name)
            if found.pk in visible[type(found)]:
                row["url"] = _link(found)
        elif found is not None:
            row["what"] = _("Portal user")
            row["name"] = found.get_full_name() or found.get_username()
        rows.append(row)
    return rows


@role_required(*CRM_ROLES)
def record_detail(request: HttpRequest, kind: str, pk: Any) -> HttpResponse:
    k = KINDS[kind]
    record = get_record_for_user(request, k.model, pk)
    ctx = {
        "kind": k,
        "record": record,
        "title": _("%(kind)s “%(name)s”") % {"kind": capfirst(k.verbose_name), "name": record},
        "fields": _fields(k, record),
        "owner": display(record, "owner"),
        "sync_rows": _sync_rows(request, k, record) if k.record_type else None,
        "attendees": _attendees(request, record) if isinstance(record, Appointment) else None,
        "emails": record_emails(request.user, record),
    }
    return render(request, "crm/record_detail.html", ctx)


@role_required(*CRM_ROLES)
def record_create(request: HttpRequest, kind: str) -> HttpResponse:
    k = KINDS[kind]
    # A plain user owns what they create; an administrator's form has an owner field.
    form = k.form(request.POST or None, instance=k.model(owner=request.user), user=request.user)
    if request.method == "POST" and form.is_valid():
        record = form.save()
        text = _("%(kind)s “%(name)s” created.") % {"kind": capfirst(k.verbose_name), "name": record}
        messages.success(request, text)
        return redirect(k.urls["detail"], record.pk)
    title = _("New %(name)s") % {"name": k.verbose_name}
    return render(request, "crm/record_form.html", {"kind": k, "form": form, "title": title})


@role_required(*CRM_ROLES)
def record_edit(request: HttpRequest, kind: str, pk: Any) -> HttpResponse:
    k = KINDS[kind]
    record = get_record_for_user(request, k.model, pk)
    form = k.form(request.POST or None, instance=record, user=request.user)
    if request.method == "POST" and form.is_valid():
        # Every save is a new version the sync engine picks up: save only real changes.
        if form.has_changed():
            form.save()
        text = _("%(kind)s “%(name)s” saved.") % {"kind": capfirst(k.verbose_name), "name": record}
        messages.success(request, text)
        return redirect(k.urls["detail"], record.pk)
    title = _("Edit %(kind)s “%(name)s”") % {"kind": k.verbose_name, "name": record}
    return render(request, "crm/record_form.html", {"kind": k, "form": form, "record": record, "title": title})


@role_required(*CRM_ROLES)
def record_delete(request: HttpRequest, kind: str, pk: Any) -> HttpResponse:
    k = KINDS[kind]
    record = get_record_for_user(request, k.model, pk)
    if request.method == "POST":
        record.delete()  # soft: the sync engine still sees it and removes it from the mailboxes
        text = _("%(kind)s “%(name)s” deleted.") % {"kind": capfirst(k.verbose_name), "name": record}
        messages.success(request, text)
        return redirect(k.urls["list"])
    title = _("Delete %(kind)s “%(name)s”") % {"kind": k.verbose_name, "name": record}
    return render(request, "crm/record_delete.html", {"kind": k, "record": record, "title": title})
