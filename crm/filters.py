"""Sync filters: which CRM records go to a user's mailbox.

A filter's ``rules`` is a group ``{"match": "all" | "any", "rules": [row or group, ...]}``;
a row is ``{"field": ..., "operator": ..., "value": ...}``. Rules compile to one Django ``Q``
that the database evaluates: records are never read here.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit.log import Actor
from crm.models import SYNCED_MODELS, ActivityStatus, FilterOperator, Priority, RecordType, SyncFilter
from mailboxes.models import Membership, Organization

Op = FilterOperator

MAX_DEPTH = 3
# Relative dates further out than this are typos, not intentions.
MAX_DAYS = 3660

TEXT_OPS = frozenset({Op.EQUALS, Op.NOT_EQUALS, Op.CONTAINS, Op.IN, Op.IS_SET, Op.IS_NOT_SET})
CHOICE_OPS = frozenset({Op.EQUALS, Op.NOT_EQUALS, Op.IN})
BOOL_OPS = frozenset({Op.EQUALS})
DATE_OPS = frozenset({Op.ON_OR_AFTER_DAYS, Op.ON_OR_BEFORE_DAYS, Op.IS_SET, Op.IS_NOT_SET})
USER_OPS = frozenset({Op.IS_ME, Op.EQUALS, Op.NOT_EQUALS, Op.IN})
RECORD_OPS = frozenset({Op.EQUALS, Op.NOT_EQUALS, Op.IN, Op.IS_SET, Op.IS_NOT_SET})
# Operators that take no value.
NO_VALUE_OPS = frozenset({Op.IS_ME, Op.IS_SET, Op.IS_NOT_SET})


@dataclass(frozen=True)
class FieldSpec:
    """One field a filter may use: its kind and the operators allowed on it."""

    kind: str  # text, choice, bool, date, datetime, user, account, contact
    operators: frozenset[str]
    choices: tuple[str, ...] = ()


def _text() -> FieldSpec:
    return FieldSpec("text", TEXT_OPS)


def _choice(choices: Any) -> FieldSpec:
    return FieldSpec("choice", CHOICE_OPS, tuple(choices.values))


OWNER = FieldSpec("user", USER_OPS)

FILTER_FIELDS: dict[str, dict[str, FieldSpec]] = {
    RecordType.CONTACT: {
        "owner": OWNER,
        "first_name": _text(),
        "last_name": _text(),
        "email": _text(),
        "job_title": _text(),
        "account": FieldSpec("account", RECORD_OPS),
        "is_active": FieldSpec("bool", BOOL_OPS),
    },
    RecordType.APPOINTMENT: {
        "owner": OWNER,
        "subject": _text(),
        "start": FieldSpec("datetime", DATE_OPS),
        "end": FieldSpec("datetime", DATE_OPS),
        "status": _choice(ActivityStatus),
        "location": _text(),
        "regarding_account": FieldSpec("account", RECORD_OPS),
        "regarding_contact": FieldSpec("contact", RECORD_OPS),
    },
    RecordType.TASK: {
        "owner": OWNER,
        "subject": _text(),
        "due": FieldSpec("date", DATE_OPS),
        "status": _choice(ActivityStatus),
        "priority": _choice(Priority),
    },
}

# New users get these when their organization has no templates.
DEFAULT_FILTERS: tuple[dict[str, Any], ...] = (
    {
        "record_type": RecordType.CONTACT,
        "name": "My active contacts",
        "rules": {
            "match": "all",
            "rules": [
                {"field": "owner", "operator": Op.IS_ME.value, "value": None},
                {"field": "is_active", "operator": Op.EQUALS.value, "value": True},
            ],
        },
    },
    {
        "record_type": RecordType.APPOINTMENT,
        "name": "My appointments from 30 days ago",
        "rules": {
            "match": "all",
            "rules": [
                {"field": "owner", "operator": Op.IS_ME.value, "value": None},
                {"field": "start", "operator": Op.ON_OR_AFTER_DAYS.value, "value": -30},
            ],
        },
    },
    {
        "record_type": RecordType.TASK,
        "name": "My open tasks",
        "rules": {
            "match": "all",
            "rules": [
                {"field": "owner", "operator": Op.IS_ME.value, "value": None},
                {"field": "status", "operator": Op.EQUALS.value, "value": ActivityStatus.OPEN.value},
            ],
        },
    },
)

# An empty group matches everything. Q() would not do: Q() | Q(x) is Q(x).
MATCH_ALL = Q(pk__isnull=False)


# Validation ------------------------------------------------------------------------------


def _fields_for(record_type: str) -> dict[str, FieldSpec]:
    try:
        return FILTER_FIELDS[record_type]
    except KeyError:
        raise ValidationError(_("Unknown record type %(type)s.") % {"type": repr(record_type)}) from None


def validate_rules(record_type: str, rules: Any) -> dict[str, Any]:
    """Check a rules group and return it normalised; ValidationError names the bad row.

    Rows are numbered from 1, nested ones by their path: "rule 2.1" is the first row of
    the group that is the second row of the top group.
    """
    fields = _fields_for(record_type)
    if rules is None:
        rules = {}
    return _validate_group(fields, rules, path="", depth=1)


def _where(path: str) -> str:
    return _("Rule %(path)s") % {"path": path} if path else _("The filter")


def _validate_group(fields: dict[str, FieldSpec], group: Any, path: str, depth: int) -> dict[str, Any]:
    if not isinstance(group, dict):
        raise ValidationError(
            _("%(where)s: a group must be an object with 'match' and 'rules'.") % {"where": _where(path)}
        )
    unknown = set(group) - {"match", "rules"}
    if unknown:
        raise ValidationError(
            _("%(where)s: unknown keys %(keys)s.") % {"where": _where(path), "keys": ", ".join(sorted(unknown))}
        )
    match = group.get("match", "all")
    if match not in ("all", "any"):
        raise ValidationError(
            _("%(where)s: match must be 'all' or 'any', not %(match)s.") % {"where": _where(path), "match": repr(match)}
        )
    rows = group.get("rules", [])
    if not isinstance(rows, list):
        raise ValidationError(_("%(where)s: 'rules' must be a list.") % {"where": _where(path)})
    normalised = []
    for n, row in enumerate(rows, start=1):
        row_path = f"{path}.{n}" if path else str(n)
        if isinstance(row, dict) and "rules" in row:
            if depth >= MAX_DEPTH:
                raise ValidationError(
                    _("Rule %(path)s: groups nest at most %(depth)d deep.") % {"path": row_path, "depth": MAX_DEPTH}
                )
            normalised.append(_validate_group(fields, row, row_path, depth + 1))
        else:
            normalised.append(_validate_row(fields, row, row_path))
    return {"match": match, "rules": normalised}


def _validate_row(fields: dict[str, FieldSpec], row: Any, path: str) -> dict[str, Any]:
    where = _("Rule %(path)s") % {"path": path}
    if not isinstance(row, dict):
        raise ValidationError(
            _("%(where)s: a rule must be an object with 'field', 'operator' and 'value'.") % {"where": where}
        )
    unknown = set(row) - {"field", "operator", "value"}
    if unknown:
        raise ValidationError(
            _("%(where)s: unknown keys %(keys)s.") % {"where": where, "keys": ", ".join(sorted(unknown))}
        )
    name, operator = row.get("field"), row.get("operator")
    if not isinstance(name, str) or name not in fields:
        raise ValidationError(
            _("%(where)s: unknown field %(field)s; use one of %(fields)s.")
            % {"where": where, "field": repr(name), "fields": ", ".join(fields)}
        )
    spec = fields[name]
    if not isinstance(operator, str) or operator not in spec.operators:
        allowed = ", ".join(sorted(spec.operators))
        raise ValidationError(
            _("%(where)s: operator %(operator)s does not apply to %(field)s; use one of %(allowed)s.")
            % {"where": where, "operator": repr(operator), "field": name, "allowed": allowed}
        )
    value = None if operator in NO_VALUE_OPS else _validate_value(spec, operator, row.get("value"), f"{where} ({name})")
    return {"field": name, "operator": str(operator), "value": value}


def _validate_value(spec: FieldSpec, operator: str, value: Any, where: str) -> Any:
    if operator in (Op.ON_OR_AFTER_DAYS, Op.ON_OR_BEFORE_DAYS):
        return _days(value, where)
    if operator == Op.IN:
        if not isinstance(value, list) or not value:
            raise ValidationError(_("%(where)s: 'is one of' needs a non-empty list of values.") % {"where": where})
        return [_scalar(spec, v, where) for v in value]
    return _scalar(spec, value, where)


def _days(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(
            _("%(where)s: the number of days must be a whole number, not %(value)s.")
            % {"where": where, "value": repr(value)}
        )
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise ValidationError(
            _("%(where)s: the number of days must be a whole number, not %(value)s.")
            % {"where": where, "value": repr(value)}
        ) from None
    if isinstance(value, float) and value != days:
        raise ValidationError(
            _("%(where)s: the number of days must be a whole number, not %(value)s.")
            % {"where": where, "value": repr(value)}
        )
    if abs(days) > MAX_DAYS:
        raise ValidationError(
            _("%(where)s: the number of days must be between -%(max)d and %(max)d.") % {"where": where, "max": MAX_DAYS}
        )
    return days


def _scalar(spec: FieldSpec, value: Any, where: str) -> Any:
    if spec.kind == "text":
        if not isinstance(value, str):
            raise ValidationError(
                _("%(where)s: the value must be text, not %(value)s.") % {"where": where, "value": repr(value)}
            )
        return value
    if spec.kind == "choice":
        if value not in spec.choices:
            raise ValidationError(
                _("%(where)s: %(value)s is not one of %(choices)s.")
                % {"where": where, "value": repr(value), "choices": ", ".join(spec.choices)}
            )
        return str(value)
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValidationError(
            _("%(where)s: the value must be true or false, not %(value)s.") % {"where": where, "value": repr(value)}
        )
    if spec.kind == "user":
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            raise ValidationError(
                _("%(where)s: the value must be a user id, not %(value)s.") % {"where": where, "value": repr(value)}
            )
        return int(value)
    if spec.kind in ("account", "contact"):
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            message = (
                _("%(where)s: the value must be the id of an account, not %(value)s.")
                if spec.kind == "account"
                else _("%(where)s: the value must be the id of a contact, not %(value)s.")
            )
            raise ValidationError(message % {"where": where, "value": repr(value)}) from None
    raise ValidationError(
        _("%(where)s: this field takes no value.") % {"where": where}
    )  # dates: only relative operators


# Compiling -------------------------------------------------------------------------------


def compile_rules(record_type: str, rules: Any, user: Any, today: datetime.date) -> Q:
    """Compile a rules group to a Q for the record type's model.

    1. Validate and normalise the rules: a stored filter that no longer validates raises
       rather than silently narrowing what syncs (that would remove items from mailboxes).
    2. Turn each row into a Q, combine a group's rows with AND ("all") or OR ("any").
       An empty group matches everything.
    """
    normalised = validate_rules(record_type, rules)
    return _compile_group(SYNCED_MODELS[record_type], normalised, user, today)


def _compile_group(model: Any, group: dict[str, Any], user: Any, today: datetime.date) -> Q:
    parts = [
        _compile_group(model, row, user, today) if "rules" in row else _compile_row(model, row, user, today)
        for row in group["rules"]
    ]
    if not parts:
        return MATCH_ALL
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part if group["match"] == "all" else combined | part
    return combined


def _start_of_day(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _compile_row(model: Any, row: dict[str, Any], user: Any, today: datetime.date) -> Q:
    name, operator, value = row["field"], row["operator"], row["value"]
    field = model._meta.get_field(name)
    if operator == Op.IS_ME:
        return Q(**{name: user})
    if operator in (Op.IS_SET, Op.IS_NOT_SET):
        is_set = Q(**{f"{name}__isnull": False}) if field.null else ~Q(**{name: ""})
        return is_set if operator == Op.IS_SET else ~is_set
    if operator in (Op.ON_OR_AFTER_DAYS, Op.ON_OR_BEFORE_DAYS):
        day = today + datetime.timedelta(days=value)
        is_datetime = field.get_internal_type() == "DateTimeField"
        if operator == Op.ON_OR_AFTER_DAYS:
            return Q(**{f"{name}__gte": _start_of_day(day) if is_datetime else day})
        # "On or before" a day includes all of that day.
        if is_datetime:
            return Q(**{f"{name}__lt": _start_of_day(day + datetime.timedelta(days=1))})
        return Q(**{f"{name}__lte": day})
    lookup = f"{name}_id" if field.is_relation else name
    if operator == Op.EQUALS:
        return Q(**{lookup: value})
    if operator == Op.NOT_EQUALS:
        return ~Q(**{lookup: value})
    if operator == Op.CONTAINS:
        return Q(**{f"{name}__icontains": value})
    if operator == Op.IN:
        return Q(**{f"{lookup}__in": value})
    raise ValueError(f"unhandled operator {operator!r}")  # validate_rules lets none through


# A user's filters ------------------------------------------------------------------------


def _enabled_filters(user: Any, organization: Organization, record_type: str) -> Any:
    return SyncFilter.objects.filter(user=user, organization=organization, record_type=record_type, enabled=True)


def filter_q(user: Any, organization: Organization, record_type: str, today: datetime.date | None = None) -> Q | None:
    """The records of one type that go to the user's mailbox, or None: the type does not sync.

    One query (the user's enabled filters); the user's filters are OR-ed, so adding one
    widens, and the result is limited to the organization.
    """
    rules = list(_enabled_filters(user, organization, record_type).order_by("id").values_list("rules", flat=True))
    return _combined(record_type, rules, user, organization, today or timezone.localdate())


def _combined(
    record_type: str, rules: list[Any], user: Any, organization: Organization, today: datetime.date
) -> Q | None:
    if not rules:
        return None
    combined = compile_rules(record_type, rules[0], user, today)
    for more in rules[1:]:
        combined = combined | compile_rules(record_type, more, user, today)
    return Q(organization=organization) & combined


def filters_fingerprint(user: Any, organization: Organization, record_type: str) -> str:
    """A sha256 hex digest of the user's enabled filters of one type: it changes when they do.

    Relative dates are stored as day offsets, so the passing of time does not change it.
    """
    rows = (
        _enabled_filters(user, organization, record_type)
        .order_by("id")
        .values_list("id", "rules", "enabled", "updated")
    )
    return _fingerprint(rows)


def _fingerprint(rows: Any) -> str:
    canonical = [[str(pk), rules, enabled, updated.isoformat()] for pk, rules, enabled, updated in rows]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def mailbox_filters(
    user: Any, organization: Organization, today: datetime.date | None = None
) -> dict[str, tuple[Q | None, str]]:
    """``(filter_q, filters_fingerprint)`` of every record type, from one query."""
    today = today or timezone.localdate()
    rows: dict[str, list[Any]] = {record_type: [] for record_type in RecordType.values}
    query = SyncFilter.objects.filter(user=user, organization=organization, enabled=True).order_by("id")
    for record_type, *row in query.values_list("record_type", "id", "rules", "enabled", "updated"):
        rows[record_type].append(row)
    return {
        record_type: (_combined(record_type, [r[1] for r in found], user, organization, today), _fingerprint(found))
        for record_type, found in rows.items()
    }


def ensure_default_filters(user: Any, organization: Organization, actor: Actor) -> list[SyncFilter]:
    """Give a user without filters in the organization its templates, or else the defaults.

    1. Lock the user's membership so two calls at once do not both copy.
    2. If the user has any filter in the organization (even a disabled one), do nothing.
    3. Copy the organization's templates (filters without a user); without templates,
       create DEFAULT_FILTERS. Each creation is audited.
    """
    with transaction.atomic():
        list(Membership.objects.select_for_update().filter(user=user, organization=organization))
        if SyncFilter.objects.filter(user=user, organization=organization).exists():
            return []
        templates = SyncFilter.objects.filter(organization=organization, user=None).order_by("record_type", "name")
        sources = [
            {"record_type": t.record_type, "name": t.name, "enabled": t.enabled, "rules": t.rules} for t in templates
        ] or copy.deepcopy(list(DEFAULT_FILTERS))
        created = []
        for source in sources:
            sync_filter = SyncFilter(organization=organization, user=user, **source)
            sync_filter.save_audited(actor)
            created.append(sync_filter)
        return created


# The rule editor, the preview and resetting to the templates ------------------------------

# Operators whose value is a number of days from today.
DAY_OPS = frozenset({Op.ON_OR_AFTER_DAYS, Op.ON_OR_BEFORE_DAYS})


def editor_fields(record_type: str) -> list[dict[str, Any]]:
    """The fields a filter of one record type may use, as the rule editor offers them.

    Each field: its name, label (the model field's, in the active language), kind, the
    operators that apply to it ((value, label) in FilterOperator's order) and, for choice
    and yes/no fields, the values it takes ((value, label)).
    """
    model = SYNCED_MODELS[record_type]
    fields = []
    for name, spec in _fields_for(record_type).items():
        field = model._meta.get_field(name)
        if spec.kind == "choice":
            choices = [(str(value), str(label)) for value, label in field.choices if value in spec.choices]
        elif spec.kind == "bool":
            choices = [("true", _("Yes")), ("false", _("No"))]
        else:
            choices = []
        fields.append(
            {
                "name": name,
                "label": str(capfirst(field.verbose_name)),
                "kind": spec.kind,
                "operators": [(op.value, str(op.label)) for op in Op if op.value in spec.operators],
                "choices": choices,
            }
        )
    return fields


def editor_spec() -> dict[str, Any]:
    """What the rule editor needs to know, as JSON-ready data: fields per record type, which
    operators take no value, a list or a number of days, and how deep groups may nest."""
    return {
        "max_depth": MAX_DEPTH,
        "max_days": MAX_DAYS,
        "no_value": sorted(op.value for op in NO_VALUE_OPS),
        "list_ops": [Op.IN.value],
        "day_ops": sorted(op.value for op in DAY_OPS),
        "record_types": {record_type: editor_fields(record_type) for record_type in RecordType.values},
    }


def preview(
    record_type: str,
    rules: Any,
    user: Any,
    organization: Organization,
    records: Any = None,
    limit: int = 10,
    today: datetime.date | None = None,
) -> tuple[int, list[Any]]:
    """How many records one filter's rules select, and the first ``limit`` of them.

    1. Compile the rules as the engine does (a ValidationError names the bad row).
    2. Limit them to the organization and, when given, to ``records``: a queryset of the
       record type's model, for example the records the person may see.
    """
    q = Q(organization=organization) & compile_rules(record_type, rules, user, today or timezone.localdate())
    matching = (records if records is not None else SYNCED_MODELS[record_type].objects).filter(q)
    return matching.count(), list(matching[:limit])


def reset_filters(user: Any, organization: Organization, actor: Actor) -> tuple[int, list[SyncFilter]]:
    """Replace a user's filters in an organization with its templates, or else the defaults.

    1. In one transaction, delete each of the user's filters there (each deletion audited).
    2. Copy the templates as for a new member (``ensure_default_filters``, audited).
    Returns how many filters were deleted and the filters created.
    """
    with transaction.atomic():
        old = list(SyncFilter.objects.select_for_update().filter(user=user, organization=organization))
        for sync_filter in old:
            sync_filter.delete_audited(actor)
        created = ensure_default_filters(user, organization, actor)
    return len(old), created
