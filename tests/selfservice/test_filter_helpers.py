"""The helpers crm/filters.py gained for the editor, the preview and resetting."""

from __future__ import annotations

from typing import Any

import pytest

from crm.access import visible_records
from crm.filters import DEFAULT_FILTERS, MAX_DEPTH, editor_fields, editor_spec, filter_q, preview, reset_filters
from crm.models import Contact, SyncFilter

pytestmark = pytest.mark.django_db


def test_the_editor_offers_each_fields_operators_and_values() -> None:
    fields = {f["name"]: f for f in editor_fields("task")}

    assert fields["owner"]["label"] == "Owner"
    assert [op for op, _ in fields["owner"]["operators"]] == ["eq", "ne", "is_me", "in"]
    assert fields["status"]["choices"] == [("open", "Open"), ("completed", "Completed"), ("canceled", "Canceled")]
    assert [op for op, _ in fields["due"]["operators"]] == [
        "is_set",
        "is_not_set",
        "on_or_after_days",
        "on_or_before_days",
    ]
    spec = editor_spec()
    assert spec["max_depth"] == MAX_DEPTH
    assert set(spec["record_types"]) == {"contact", "appointment", "task"}
    assert {f["name"]: f["choices"] for f in spec["record_types"]["contact"]}["is_active"] == [
        ("true", "Yes"),
        ("false", "No"),
    ]


def test_the_preview_counts_what_the_engine_would_select(org: Any, alice: Any, bob: Any) -> None:
    Contact.objects.create(organization=org, owner=alice, last_name="Smith")
    Contact.objects.create(organization=org, owner=bob, last_name="Smith")
    rules = {"match": "all", "rules": [{"field": "last_name", "operator": "eq", "value": "Smith"}]}

    assert preview("contact", rules, alice, org)[0] == 2
    count, records = preview("contact", rules, alice, org, records=visible_records(alice, Contact))
    assert (count, [r.owner for r in records]) == (1, [alice])


def test_reset_without_templates_gives_the_defaults(org: Any, alice: Any, system: Any) -> None:
    SyncFilter.objects.filter(user=alice).update(enabled=False, name="Changed")

    deleted, created = reset_filters(alice, org, system)

    assert deleted == 3
    assert sorted(f.name for f in created) == sorted(f["name"] for f in DEFAULT_FILTERS)
    assert filter_q(alice, org, "contact") is not None
