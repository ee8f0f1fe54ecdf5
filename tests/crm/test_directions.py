"""Field-level direction: two-way by default, per-organization rows, always-two-way fields."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from crm.directions import ALWAYS_TWO_WAY, SYNC_FIELDS, directions_for, validate_direction
from crm.models import SYNCED_MODELS, Direction, FieldDirection
from mailboxes.models import Organization

pytestmark = pytest.mark.django_db


def set_direction(org: Organization, record_type: str, field: str, direction: str) -> FieldDirection:
    # objects.create skips clean(): rows the database may hold whatever validation says.
    return FieldDirection.objects.create(organization=org, record_type=record_type, field=field, direction=direction)


def test_sync_fields_are_model_fields() -> None:
    assert set(SYNC_FIELDS) == set(SYNCED_MODELS)
    for record_type, fields in SYNC_FIELDS.items():
        for name in fields:
            SYNCED_MODELS[record_type]._meta.get_field(name)  # raises FieldDoesNotExist


@pytest.mark.parametrize("record_type", list(SYNC_FIELDS))
def test_without_rows_every_field_is_two_way(org: Organization, record_type: str) -> None:
    directions = directions_for(org.pk, record_type)
    assert list(directions) == list(SYNC_FIELDS[record_type])
    assert set(directions.values()) == {Direction.TWO_WAY}


def test_a_row_sets_one_fields_direction(org: Organization, other_org: Organization) -> None:
    set_direction(org, "contact", "email", Direction.TO_EXCHANGE)
    set_direction(org, "contact", "mobile_phone", Direction.NONE)
    set_direction(org, "task", "description", Direction.TO_CRM)  # another type
    set_direction(other_org, "contact", "job_title", Direction.TO_CRM)  # another organization

    directions = directions_for(org.pk, "contact")
    assert {f: d for f, d in directions.items() if d != Direction.TWO_WAY} == {
        "email": Direction.TO_EXCHANGE,
        "mobile_phone": Direction.NONE,
    }
    assert directions_for(org.pk, "task")["description"] == Direction.TO_CRM
    assert directions_for(other_org.pk, "contact")["job_title"] == Direction.TO_CRM
    assert directions_for(other_org.pk, "contact")["email"] == Direction.TWO_WAY


def test_always_two_way_wins_over_a_row(org: Organization) -> None:
    set_direction(org, "appointment", "start", Direction.NONE)
    set_direction(org, "appointment", "attendees", Direction.TO_EXCHANGE)
    set_direction(org, "appointment", "subject", Direction.TO_CRM)

    directions = directions_for(org.pk, "appointment")
    assert directions["start"] == directions["attendees"] == Direction.TWO_WAY
    assert directions["subject"] == Direction.TO_CRM


def test_rows_for_fields_that_no_longer_sync_are_ignored(org: Organization) -> None:
    set_direction(org, "contact", "fax", Direction.NONE)
    assert "fax" not in directions_for(org.pk, "contact")


def test_directions_for_runs_one_query(org: Organization, django_assert_num_queries: Any) -> None:
    set_direction(org, "contact", "email", Direction.TO_EXCHANGE)
    with django_assert_num_queries(1):
        directions_for(org.pk, "contact")


def test_directions_for_refuses_an_unknown_record_type(org: Organization) -> None:
    with pytest.raises(ValueError, match="lead"):
        directions_for(org.pk, "lead")


# Validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record_type", "field", "direction"),
    [
        ("contact", "email", Direction.TO_EXCHANGE),
        ("task", "due", Direction.NONE),
        ("appointment", "subject", Direction.TO_CRM),
        ("appointment", "start", Direction.TWO_WAY),
        ("appointment", "organizer", Direction.TWO_WAY),
    ],
)
def test_valid_directions_pass(record_type: str, field: str, direction: str) -> None:
    validate_direction(record_type, field, direction)


@pytest.mark.parametrize(
    ("record_type", "field", "direction", "key", "message"),
    [
        ("contact", "fax", Direction.NONE, "field", "'fax' is not a synced contact field"),
        ("task", "email", Direction.NONE, "field", "'email' is not a synced task field"),
        ("lead", "email", Direction.NONE, "record_type", "Unknown record type 'lead'"),
        ("contact", "email", "sideways", "direction", "Unknown direction 'sideways'"),
        ("appointment", "start", Direction.TO_CRM, "direction", "The appointment start always syncs both ways"),
        ("appointment", "end", Direction.NONE, "direction", "The appointment end always syncs both ways"),
        ("appointment", "attendees", Direction.TO_EXCHANGE, "direction", "attendees always syncs both ways"),
        ("appointment", "organizer", Direction.NONE, "direction", "organizer always syncs both ways"),
    ],
)
def test_invalid_directions_name_the_problem(
    record_type: str, field: str, direction: str, key: str, message: str
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_direction(record_type, field, direction)
    assert message in excinfo.value.message_dict[key][0]


def test_the_model_validates_through_full_clean(org: Organization) -> None:
    row = FieldDirection(organization=org, record_type="appointment", field="end", direction=Direction.TO_CRM)
    with pytest.raises(ValidationError) as excinfo:
        row.full_clean()
    assert "always syncs both ways" in excinfo.value.message_dict["direction"][0]

    FieldDirection(
        organization=org, record_type="appointment", field="location", direction=Direction.TO_CRM
    ).full_clean()


def test_always_two_way_covers_the_meeting_time_and_people() -> None:
    assert ALWAYS_TWO_WAY == {"appointment": {"start", "end", "attendees", "organizer"}}
