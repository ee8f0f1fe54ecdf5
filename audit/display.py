"""How an audit event reads to a person: field names, values and links in words.

Events store raw values (choice codes, booleans, ISO times) and name their object by
type and id; this module turns them into what a page shows, through the model named
in ``object_type``. It imports no other app: models are looked up by label, so an
event of a model that is gone still shows, with its raw names in words.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.urls import NoReverseMatch
from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from audit.actions import humanize

if TYPE_CHECKING:
    from audit.models import AuditEvent

EMPTY = "—"

# Keys some actions record that are not fields of the event's model: the field whose
# name and choices they share.
BORROWED_FIELDS = {
    "channel": ("syncjobs.syncrun", "channel"),
    "state": ("syncjobs.itemlink", "state"),
    "decision_reason": ("clients.promotionrequest", "decision_reason"),
}
# Keys with a name of their own (not a field anywhere).
KEY_LABELS = {
    "item": _("item"),
    "record": _("record"),
    "reason": _("reason"),
}
# Actions whose change keys are choice values of a field (mailbox.test_failed: one
# message per failed channel), named by that field's choice labels.
KEYS_ARE_CHOICES = {
    "mailbox.test_failed": ("syncjobs.syncrun", "channel"),
}


@dataclass(frozen=True)
class Change:
    """One changed field as shown: its name and the values before and after, in words."""

    field: str
    label: str
    before: Any
    after: Any


def get_model(label: str) -> type[models.Model] | None:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def get_field(model_label: str, name: str) -> models.Field | None:
    model = get_model(model_label)
    try:
        field = model._meta.get_field(name) if model is not None else None
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.Field) else None


def object_type_label(object_type: str) -> str:
    """The model's name ("Mailbox"), or the type in words when the model is gone."""
    model = get_model(object_type)
    if model is None:
        return humanize(object_type.rpartition(".")[2])
    return capfirst(str(model._meta.verbose_name))


def _field_for(event: AuditEvent, name: str) -> models.Field | None:
    field = get_field(event.object_type, name)
    if field is None and name in BORROWED_FIELDS:
        field = get_field(*BORROWED_FIELDS[name])
    return field


def field_label(event: AuditEvent, name: str) -> str:
    """The human name of a changed field ("polling interval (minutes)"), else the name in words."""
    if event.action in KEYS_ARE_CHOICES and (field := get_field(*KEYS_ARE_CHOICES[event.action])):
        label = dict(field.flatchoices).get(name)
        if label is not None:
            return str(label)
    field = _field_for(event, name)
    if field is not None:
        return str(field.verbose_name)
    if name in KEY_LABELS:
        return str(KEY_LABELS[name])
    return name.replace("_", " ")


def display_value(field: models.Field | None, value: Any) -> Any:
    """A recorded value as a person reads it.

    1. Nothing recorded (None, "") shows as a dash; False and 0 are values, not nothing.
    2. Booleans show as Yes/No.
    3. A choice shows its label; a value no longer among the choices shows as recorded.
    4. Times recorded as ISO text show in the page's date format, in the current time zone.
    5. Lists and dicts (a filter's rules) show as compact JSON; anything else as recorded.
    """
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if field is not None and field.choices and not isinstance(value, (list, dict)):
        return dict(field.flatchoices).get(value, value)
    if isinstance(field, models.DateTimeField) and isinstance(value, str):
        if parsed := _parse_datetime(value):
            return formats.date_format(parsed, "DATETIME_FORMAT")
    elif isinstance(field, models.DateField) and isinstance(value, str):
        if parsed_date := _parse_date(value):
            return formats.date_format(parsed_date, "DATE_FORMAT")
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _parse_datetime(value: str) -> Any:
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return timezone.localtime(parsed)


def _parse_date(value: str) -> Any:
    try:
        return parse_date(value)
    except ValueError:
        return None


def changes(event: AuditEvent) -> list[Change]:
    """The event's changes as shown, in the order recorded. Secrets were masked when
    recorded, so what is shown is the mask."""
    rows = []
    for name, values in (event.changes or {}).items():
        before, after = values if isinstance(values, list) and len(values) == 2 else (None, values)
        field = _field_for(event, name)
        rows.append(
            Change(
                field=name,
                label=field_label(event, name),
                before=display_value(field, before),
                after=display_value(field, after),
            )
        )
    return rows


def object_urls(
    events: Iterable[AuditEvent], admin_org_ids: Collection[Any] | None = None
) -> dict[tuple[str, str], str]:
    """The page of each event's object that still exists and has one, keyed (type, id).

    1. Models without ``get_absolute_url`` are skipped without a query.
    2. With ``admin_org_ids``, the organizations the viewer administers: only the objects of
       those organizations count, as only their administrators may open the objects' pages
       (an auditor reads the log, not the mailboxes). A model without an organization then
       counts as having no page, and with no organization at all no query is made.
    3. One query per remaining type finds the objects still there (through the default
       manager: what it hides, like logically deleted records, counts as gone).
    4. A URL that cannot be built counts as none.
    """
    ids: dict[str, set[str]] = defaultdict(set)
    for event in events:
        ids[event.object_type].add(event.object_id)
    urls = {}
    for object_type, object_ids in ids.items():
        model = get_model(object_type)
        if model is None or not hasattr(model, "get_absolute_url"):
            continue
        objects = model._default_manager.all()
        if admin_org_ids is not None:
            if not admin_org_ids or get_field(object_type, "organization") is None:
                continue
            objects = objects.filter(organization_id__in=admin_org_ids)
        keys = [key for object_id in object_ids if (key := _to_pk(model, object_id)) is not None]
        for obj in objects.filter(pk__in=keys):
            try:
                urls[(object_type, str(obj.pk))] = obj.get_absolute_url()
            except NoReverseMatch:
                continue
    return urls


def _to_pk(model: type[models.Model], object_id: str) -> Any:
    try:
        return model._meta.pk.to_python(object_id)
    except ValidationError:  # not this model's kind of key
        return None


def attach_object_urls(events: Iterable[AuditEvent], admin_org_ids: Collection[Any]) -> None:
    """Give each event its object's URL, or None where the object is gone or the viewer may not
    open its page (``admin_org_ids``: the organizations they administer), with one query per
    type, for a list page."""
    events = list(events)
    urls = object_urls(events, admin_org_ids)
    for event in events:
        event.object_url = urls.get((event.object_type, event.object_id))
