"""Field-level direction: which way each synced field flows, per organization."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from crm.models import Direction, FieldDirection, RecordType

# The meeting's time and people must agree on both sides, whatever the organization wants.
ALWAYS_TWO_WAY: dict[str, set[str]] = {RecordType.APPOINTMENT: {"start", "end", "attendees", "organizer"}}

SYNC_FIELDS: dict[str, tuple[str, ...]] = {
    RecordType.CONTACT: (
        "first_name",
        "last_name",
        "email",
        "job_title",
        "business_phone",
        "mobile_phone",
        "description",
    ),
    RecordType.APPOINTMENT: ("subject", "start", "end", "location", "description", "attendees"),
    RecordType.TASK: ("subject", "description", "due", "status", "priority"),
}


def _sync_fields(record_type: str) -> tuple[str, ...]:
    try:
        return SYNC_FIELDS[record_type]
    except KeyError:
        raise ValueError(f"unknown record type {record_type!r}") from None


def directions_for(organization_id: object, record_type: str) -> dict[str, str]:
    """Every synced field of the type and its direction: two-way unless a row says otherwise.

    One query. Always-two-way fields stay two-way whatever a row says.
    """
    _sync_fields(record_type)
    rows = FieldDirection.objects.filter(organization_id=organization_id, record_type=record_type)
    return _resolved(record_type, dict(rows.values_list("field", "direction")))


def all_directions(organization_id: object) -> dict[str, dict[str, str]]:
    """``directions_for`` of every record type, from one query."""
    rows: dict[str, dict[str, str]] = {record_type: {} for record_type in SYNC_FIELDS}
    query = FieldDirection.objects.filter(organization_id=organization_id)
    for record_type, field, direction in query.values_list("record_type", "field", "direction"):
        rows.setdefault(record_type, {})[field] = direction
    return {
        record_type: _resolved(record_type, found) for record_type, found in rows.items() if record_type in SYNC_FIELDS
    }


def _resolved(record_type: str, rows: dict[str, str]) -> dict[str, str]:
    always = ALWAYS_TWO_WAY.get(record_type, set())
    return {
        field: Direction.TWO_WAY.value if field in always else rows.get(field, Direction.TWO_WAY.value)
        for field in _sync_fields(record_type)
    }


def validate_direction(record_type: str, field: str, direction: str) -> None:
    """Raise ValidationError for an unknown type, field or direction, or a one-way always-two-way field."""
    if record_type not in SYNC_FIELDS:
        raise ValidationError({"record_type": _("Unknown record type %(type)s.") % {"type": repr(record_type)}})
    always = ALWAYS_TWO_WAY.get(record_type, set())
    known = (*SYNC_FIELDS[record_type], *sorted(always - set(SYNC_FIELDS[record_type])))
    if field not in known:
        raise ValidationError(
            {
                "field": _("%(field)s is not a synced %(type)s field; use one of %(fields)s.")
                % {"field": repr(field), "type": record_type, "fields": ", ".join(known)}
            }
        )
    if direction not in Direction.values:
        raise ValidationError({"direction": _("Unknown direction %(direction)s.") % {"direction": repr(direction)}})
    if field in always and direction != Direction.TWO_WAY:
        raise ValidationError(
            {"direction": _("The %(type)s %(field)s always syncs both ways.") % {"type": record_type, "field": field}}
        )
