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
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from audit.actions import ACTIONS, action_label, choices, humanize
from audit.display import object_type_label
from audit.models import AuditEvent

# An action code ("mailbox.approved") or the start of codes ("mailbox." or "mailbox": every
# action on mailboxes, for links); an object type is a model's label ("mailboxes.mailbox").
ACTION = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]*)?$")
OBJECT_TYPE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
# How much later than its successor in the chain an event may be stamped: events are stamped
# when they are made and numbered when they get the chain, which may wait for another writer's
# transaction (seq_after). Writers whose clocks differ by more than this can have events left
# out of a date range (seq_after).
CLOCK_MARGIN = timedelta(hours=1)
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
        if len(organizations) < 2:  # nothing to choose
            self.fields["organization"].widget = forms.HiddenInput()
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
            if not field.widget.is_hidden:
                css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
                field.widget.attrs["class"] = css

    def full_clean(self) -> None:
        super().full_clean()
        for name in self.errors:
            if name in self.fields and not self.fields[name].widget.is_hidden:
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

    def organizations(self) -> list[Any]:
        """The organizations whose events the (valid) form selects: the chosen one, else all
        those whose log the viewer reads."""
        chosen = self.cleaned_data["organization"]
        return [chosen] if chosen else list(self.organization_ids)

    def events(self) -> Any:
        """All the events the (valid) form selects, in one queryset: to count them, say. The
        pages and the export read them per organization (``events_of``)."""
        return self._narrow(AuditEvent.objects.filter(organization_id__in=self.organizations()))

    def events_of(self, organization: Any, after: int | None = None, before: int | None = None) -> Any:
        """The selected events of one organization, with seq between ``after`` and ``before``
        (a page's cursor; both excluded).

        1. One organization per query: read in seq order along an index that starts with it (or
           with another filter's field), where one query over several ("organization_id IN")
           would have all their events sorted first (SQLite does).
        2. The cursor and the date range's bounds on seq (``seq_after``) make one bound on each
           side: SQLite starts an index range at one of several, not at the tightest.
        """
        low, high = self._seq_bounds
        lower = max((n for n in (low, after) if n is not None), default=None)
        upper = min((n for n in (high, before) if n is not None), default=None)
        events = AuditEvent.objects.filter(organization_id=organization)
        if lower is not None:
            events = events.filter(seq__gt=lower)
        if upper is not None:
            events = events.filter(seq__lt=upper)
        return self._narrow(events)

    def _narrow(self, events: Any) -> Any:
        data = self.cleaned_data
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
            events = events.filter(time__lt=_end_of(data["date_to"]))
        if q := data["q"].strip():
            events = events.search(q)
        return events

    @cached_property
    def _seq_bounds(self) -> tuple[int | None, int | None]:
        """The seq range of the date range (``seq_after``), found once for all the queries."""
        start, end = self.cleaned_data["date_from"], self.cleaned_data["date_to"]
        return (seq_after(_start_of(start)) if start else None, seq_before(_end_of(end)) if end else None)

    def active(self) -> dict[str, str]:
        """The filters in use, as the query string gives them ({} while the form is invalid)."""
        if not self.is_valid():
            return {}
        return {name: str(value).strip() for name in FILTERS if (value := self.cleaned_data.get(name))}

    def query(self, **extra: Any) -> str:
        """The query string of the filters in use, plus ``extra``: for links that keep them."""
        return urlencode({**self.active(), **extra})


def seq_after(moment: datetime) -> int | None:
    """A seq that every event at or after ``moment`` comes after (None: no such bound).

    The pages go by seq, newest first; a date range alone would have them walk the seq index
    down from the newest event to the range, or sort the range first. Events are numbered in
    the order they are written and stamped a moment before, so time and seq run together,
    give or take how long a writer waits for the chain (CLOCK_MARGIN at most): every event at
    or after ``moment`` comes after the last event stamped more than CLOCK_MARGIN before it.
    One probe of the time index finds that event.

    The bound assumes the writers' clocks agree within CLOCK_MARGIN: an event stamped by a
    clock that was over an hour behind or ahead of the others (a host without NTP) may fall
    outside the bounds and be missing from a date-filtered page or export, though it is in
    the log, in the unfiltered pages, and in ``audit_verify``'s walk.
    """
    earlier = AuditEvent.objects.filter(time__lt=moment - CLOCK_MARGIN).order_by("-time")
    return earlier.values_list("seq", flat=True).first()


def seq_before(moment: datetime) -> int | None:
    """A seq that every event before ``moment`` comes before (as ``seq_after``, the other way)."""
    later = AuditEvent.objects.filter(time__gte=moment + CLOCK_MARGIN).order_by("time")
    return later.values_list("seq", flat=True).first()


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


def _end_of(day: date) -> datetime:
    """Midnight ending ``day`` (the date range includes its last day)."""
    return _start_of(day + timedelta(days=1))
