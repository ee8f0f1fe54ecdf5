"""The audit review's filter: one form for the list, an object's history and the export."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.actions import ACTIONS, action_label, choices, humanize
from audit.display import object_type_label
from audit.models import AuditEvent

# An action code ("mailbox.approved") or the start of codes ("mailbox." or "mailbox": every
# action on mailboxes, for links); an object type is a model's label ("mailboxes.mailbox").
ACTION = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]*)?$")
OBJECT_TYPE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
# The fields that narrow the events, in the order of the page's links and of the export's event.
FILTERS = ("person", "action", "object_type", "object_id", "organization", "date_from", "date_to", "q")


def object_types() -> list[str]:
    """The object types that occur in the log, sorted.

    One query that jumps from one type to the next in the (object_type, object_id, -seq) index
    (a "loose index scan"): one index probe per type, however many events there are.
    """
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE types(name) AS ("  # noqa: S608 (the table name comes from the model)
            f" SELECT MIN(object_type) FROM {table}"
            f" UNION ALL SELECT (SELECT MIN(object_type) FROM {table} WHERE object_type > types.name)"
            f" FROM types WHERE types.name IS NOT NULL"
            f") SELECT name FROM types WHERE name IS NOT NULL"
        )
        return [row[0] for row in cursor.fetchall()]


class AuditFilterForm(forms.Form):
    """Which events to show: every field optional, each one narrows.

    ``organizations``: (id, name) of the organizations whose log the viewer may read; the
    events are limited to those whatever the form says.
    """

    person = forms.CharField(
        label=_("Person"),
        required=False,
        max_length=150,
        help_text=_("The user name, as in the Who column."),
    )
    action = forms.CharField(label=_("Action"), required=False, max_length=100, widget=forms.Select)
    object_type = forms.CharField(label=_("Object type"), required=False, max_length=100, widget=forms.Select)
    object_id = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    organization = forms.ChoiceField(label=_("Organization"), required=False)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=200,
        help_text=_("Words in the person, the object, the action or the changes."),
    )

    def __init__(self, *args: Any, organizations: Sequence[tuple[Any, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organization_ids = [pk for pk, _name in organizations]
        self.fields["organization"].choices = [("", _("All")), *((str(pk), name) for pk, name in organizations)]
        action = self._raw("action")
        actions = choices()
        if action and action not in ACTIONS and ACTION.match(action):
            actions.insert(0, (action, _action_group_label(action)))
        self.fields["action"].widget.choices = [("", _("All")), *actions]
        types = [(name, object_type_label(name)) for name in object_types()]
        object_type = self._raw("object_type")
        if object_type and object_type not in dict(types) and OBJECT_TYPE.match(object_type):
            types.append((object_type, object_type_label(object_type)))
        types.sort(key=lambda pair: pair[1].lower())
        self.fields["object_type"].widget.choices = [("", _("All")), *types]
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs["class"] = css

    def full_clean(self) -> None:
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["class"] += " is-invalid"

    def _raw(self, name: str) -> str:
        return (self.data.get(name) or "").strip() if self.is_bound else ""

    def clean_action(self) -> str:
        action = self.cleaned_data["action"].strip()
        if action and not ACTION.match(action):
            raise forms.ValidationError(_("Choose an action from the list."))
        return action

    def clean_object_type(self) -> str:
        object_type = self.cleaned_data["object_type"].strip()
        if object_type and not OBJECT_TYPE.match(object_type):
            raise forms.ValidationError(_("Choose an object type from the list."))
        return object_type

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("object_id") and not cleaned.get("object_type") and "object_type" not in self.errors:
            self.add_error("object_type", _("An object needs its type: choose one."))
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("The end date is before the start date."))
        return cleaned

    def filter(self, events: Any) -> Any:
        """The events of the viewer's organizations that the (valid) form selects."""
        data = self.cleaned_data
        events = events.filter(organization_id__in=self.organization_ids)
        if data["organization"]:
            events = events.filter(organization_id=data["organization"])
        if data["person"]:
            events = events.filter(actor_name=data["person"].strip())
        if action := data["action"]:
            if _is_group(action):
                events = events.filter(action__startswith=action)
            else:
                events = events.filter(action=action)
        if data["object_type"]:
            events = events.filter(object_type=data["object_type"])
        if data["object_id"]:
            events = events.filter(object_id=data["object_id"])
        if data["date_from"]:
            events = events.filter(time__gte=_start_of(data["date_from"]))
        if data["date_to"]:
            events = events.filter(time__lt=_start_of(data["date_to"] + timedelta(days=1)))
        if q := data["q"].strip():
            events = events.search(q)
        return events

    def active(self) -> dict[str, str]:
        """The filters in use, as the query string gives them ({} while the form is invalid)."""
        if not self.is_valid():
            return {}
        return {name: str(value).strip() for name in FILTERS if (value := self.cleaned_data.get(name))}

    def query(self, **extra: Any) -> str:
        """The query string of the filters in use, plus ``extra``: for links that keep them."""
        return urlencode({**self.active(), **extra})

    def organization_name(self) -> str:
        chosen = self.cleaned_data.get("organization") if self.is_valid() else ""
        return dict(self.fields["organization"].choices).get(chosen, "") if chosen else ""


def _action_group_label(action: str) -> str:
    """An action typed into a link: a code not in the list, or a group of codes ("mailbox.")."""
    if _is_group(action):
        return _("Every action on: %(name)s") % {"name": humanize(action.rstrip("."))}
    return action_label(action)


def _is_group(action: str) -> bool:
    return action.endswith(".") or "." not in action


def _start_of(day: date) -> datetime:
    """Midnight starting ``day`` in the viewer's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())
