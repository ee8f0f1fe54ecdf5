"""Sync filters: validation, compiling to Q against real rows, a user's filters, defaults."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from audit.log import Actor
from audit.models import AuditEvent
from crm.filters import (
    DEFAULT_FILTERS,
    FILTER_FIELDS,
    compile_rules,
    ensure_default_filters,
    filter_q,
    filters_fingerprint,
    validate_rules,
)
from crm.models import SYNCED_MODELS, Account, Appointment, Contact, SyncFilter, Task
from mailboxes.models import Membership, Organization, Role
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 3, 16)
BERLIN = ZoneInfo("Europe/Berlin")


def group(*rules: Any, match: str = "all") -> dict[str, Any]:
    return {"match": match, "rules": list(rules)}


def row(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


def resolve(value: Any, refs: dict[str, Any]) -> Any:
    """Replace "$name" placeholders in parametrized rules with ids made by the fixtures."""
    if isinstance(value, str) and value.startswith("$"):
        return refs[value[1:]]
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    return value


def matching(record_type: str, q: Q, label: str) -> set[str]:
    model = SYNCED_MODELS[record_type]
    return set(model.objects.filter(q).values_list(label, flat=True))


def no_filters(user: Any) -> None:
    """Forget the defaults the user got on joining."""
    SyncFilter.objects.filter(user=user).delete()


def add_filter(org: Organization, user: Any, record_type: str, rules: Any, **fields: Any) -> SyncFilter:
    return SyncFilter.objects.create(
        organization=org, user=user, record_type=record_type, name=fields.pop("name", "f"), rules=rules, **fields
    )


@pytest.fixture
def refs(org: Organization, other_org: Organization, alice: Any, bob: Any, outsider: Any) -> dict[str, Any]:
    """Records in Acme (and one in Globex) with something for every operator to tell apart."""
    acme = Account.objects.create(organization=org, owner=alice, name="Acme Corp")
    initech = Account.objects.create(organization=org, owner=bob, name="Initech")
    ann = Contact.objects.create(
        organization=org,
        owner=alice,
        first_name="Ann",
        last_name="Ames",
        email="ann@ACME.example",
        job_title="CEO",
        account=acme,
    )
    Contact.objects.create(organization=org, owner=alice, last_name="Ben", is_active=False)
    Contact.objects.create(organization=org, owner=bob, last_name="Cat", job_title="cto", account=initech)
    Contact.objects.create(organization=other_org, owner=outsider, last_name="Dan")

    def appointment(subject: str, start: datetime.datetime, owner: Any = alice, **fields: Any) -> None:
        Appointment.objects.create(
            organization=org,
            owner=owner,
            subject=subject,
            start=start,
            end=start + datetime.timedelta(hours=1),
            **fields,
        )

    utc = datetime.UTC
    # In Berlin (UTC+1 in winter) 30 days before TODAY starts at 2026-02-13 23:00 UTC.
    appointment("late on the 13th", datetime.datetime(2026, 2, 13, 22, 30, tzinfo=utc))
    appointment("early on the 14th", datetime.datetime(2026, 2, 13, 23, 30, tzinfo=utc))
    appointment("today", datetime.datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN), location="Room 1", regarding_account=acme)
    appointment("tonight", datetime.datetime(2026, 3, 16, 23, 59, tzinfo=BERLIN), regarding_contact=ann)
    appointment("tomorrow", datetime.datetime(2026, 3, 17, 0, 0, tzinfo=BERLIN), owner=bob, status="completed")

    for subject, due, status, priority in [
        ("yesterday", TODAY - datetime.timedelta(days=1), "open", "high"),
        ("due today", TODAY, "completed", "normal"),
        ("due tomorrow", TODAY + datetime.timedelta(days=1), "canceled", "low"),
        ("undated", None, "open", "normal"),
    ]:
        Task.objects.create(organization=org, owner=alice, subject=subject, due=due, status=status, priority=priority)

    return {"alice": alice.pk, "bob": bob.pk, "acme": str(acme.pk), "initech": str(initech.pk), "ann": str(ann.pk)}


# Fields ----------------------------------------------------------------------------------


def test_filter_fields_name_real_model_fields() -> None:
    for record_type, fields in FILTER_FIELDS.items():
        model = SYNCED_MODELS[record_type]
        for name in fields:
            model._meta.get_field(name)  # raises FieldDoesNotExist


def test_every_record_type_has_filter_fields() -> None:
    assert set(FILTER_FIELDS) == set(SYNCED_MODELS)
    assert set(FILTER_FIELDS["contact"]) == {
        "owner",
        "first_name",
        "last_name",
        "email",
        "job_title",
        "account",
        "is_active",
    }


# Compiling against real rows -------------------------------------------------------------

CONTACT_CASES = [
    ("owner is me", group(row("owner", "is_me")), {"Ames", "Ben"}),
    ("default filter", group(row("owner", "is_me"), row("is_active", "eq", True)), {"Ames"}),
    ("inactive as text", group(row("is_active", "eq", "false")), {"Ben"}),
    ("owner equals bob", group(row("owner", "eq", "$bob")), {"Cat"}),
    ("owner is not bob", group(row("owner", "ne", "$bob")), {"Ames", "Ben"}),
    ("owner in", group(row("owner", "in", ["$alice", "$bob"])), {"Ames", "Ben", "Cat"}),
    ("any", group(row("owner", "is_me"), row("job_title", "contains", "CT"), match="any"), {"Ames", "Ben", "Cat"}),
    ("contains ignores case", group(row("email", "contains", "acme")), {"Ames"}),
    ("text equals", group(row("job_title", "eq", "cto")), {"Cat"}),
    ("text not equals", group(row("job_title", "ne", "cto")), {"Ames", "Ben"}),
    ("text in", group(row("last_name", "in", ["Ames", "Cat", "Nobody"])), {"Ames", "Cat"}),
    ("text is set", group(row("job_title", "is_set")), {"Ames", "Cat"}),
    ("text is not set", group(row("job_title", "is_not_set")), {"Ben"}),
    ("account equals", group(row("account", "eq", "$acme")), {"Ames"}),
    ("account not equals keeps empty", group(row("account", "ne", "$acme")), {"Ben", "Cat"}),
    ("account in", group(row("account", "in", ["$acme", "$initech"])), {"Ames", "Cat"}),
    ("account is set", group(row("account", "is_set")), {"Ames", "Cat"}),
    ("account is not set", group(row("account", "is_not_set")), {"Ben"}),
    (
        "nested",
        group(
            row("is_active", "eq", True),
            group(row("owner", "is_me"), group(row("job_title", "eq", "cto")), match="any"),
        ),
        {"Ames", "Cat"},
    ),
    ("empty group matches all", group(), {"Ames", "Ben", "Cat"}),
    ("empty nested group matches all", group(row("owner", "is_me"), group(match="any")), {"Ames", "Ben"}),
    ("empty 'any' widens an 'any'", group(row("owner", "eq", "$bob"), group(), match="any"), {"Ames", "Ben", "Cat"}),
]


@pytest.mark.parametrize(("case", "rules", "expected"), CONTACT_CASES, ids=[c[0] for c in CONTACT_CASES])
def test_contact_rules_select_exactly(
    case: str, rules: dict[str, Any], expected: set[str], refs: dict[str, Any], org: Organization, alice: Any
) -> None:
    q = Q(organization=org) & compile_rules("contact", resolve(rules, refs), alice, TODAY)
    assert matching("contact", q, "last_name") == expected


ALL_APPOINTMENTS = {"late on the 13th", "early on the 14th", "today", "tonight", "tomorrow"}
APPOINTMENT_CASES = [
    ("from 30 days ago", group(row("start", "on_or_after_days", -30)), ALL_APPOINTMENTS - {"late on the 13th"}),
    ("on or after today", group(row("start", "on_or_after_days", 0)), {"today", "tonight", "tomorrow"}),
    ("on or before today", group(row("start", "on_or_before_days", 0)), ALL_APPOINTMENTS - {"tomorrow"}),
    ("ends tomorrow or later", group(row("end", "on_or_after_days", 1)), {"tonight", "tomorrow"}),
    ("status", group(row("status", "eq", "completed")), {"tomorrow"}),
    ("status not", group(row("status", "ne", "open")), {"tomorrow"}),
    ("location set", group(row("location", "is_set")), {"today"}),
    ("subject contains", group(row("subject", "contains", "ON THE")), {"late on the 13th", "early on the 14th"}),
    ("regarding account", group(row("regarding_account", "eq", "$acme")), {"today"}),
    ("regarding contact", group(row("regarding_contact", "in", ["$ann"])), {"tonight"}),
    ("regarding contact set", group(row("regarding_contact", "is_set")), {"tonight"}),
]


@pytest.mark.parametrize(("case", "rules", "expected"), APPOINTMENT_CASES, ids=[c[0] for c in APPOINTMENT_CASES])
def test_appointment_rules_select_exactly_in_the_current_time_zone(
    case: str, rules: dict[str, Any], expected: set[str], refs: dict[str, Any], org: Organization, alice: Any
) -> None:
    with timezone.override(BERLIN):
        q = Q(organization=org) & compile_rules("appointment", resolve(rules, refs), alice, TODAY)
    assert matching("appointment", q, "subject") == expected


def test_relative_datetimes_start_at_midnight_of_the_current_time_zone(
    refs: dict[str, Any], org: Organization, alice: Any
) -> None:
    rules = group(row("start", "on_or_after_days", -30))
    with timezone.override(datetime.UTC):
        q = compile_rules("appointment", rules, alice, TODAY)
    # Midnight UTC on the 14th is after 23:30 UTC on the 13th.
    assert matching("appointment", q, "subject") == {"today", "tonight", "tomorrow"}


TASK_CASES = [
    ("due on or after today", group(row("due", "on_or_after_days", 0)), {"due today", "due tomorrow"}),
    ("due on or before today", group(row("due", "on_or_before_days", 0)), {"yesterday", "due today"}),
    ("due from yesterday", group(row("due", "on_or_after_days", -1)), {"yesterday", "due today", "due tomorrow"}),
    ("due before yesterday", group(row("due", "on_or_before_days", -2)), set()),
    ("no due date", group(row("due", "is_not_set")), {"undated"}),
    ("has a due date", group(row("due", "is_set")), {"yesterday", "due today", "due tomorrow"}),
    ("open", group(row("status", "eq", "open")), {"yesterday", "undated"}),
    ("status in", group(row("status", "in", ["completed", "canceled"])), {"due today", "due tomorrow"}),
    ("priority", group(row("priority", "eq", "high")), {"yesterday"}),
    ("priority not", group(row("priority", "ne", "normal")), {"yesterday", "due tomorrow"}),
]


@pytest.mark.parametrize(("case", "rules", "expected"), TASK_CASES, ids=[c[0] for c in TASK_CASES])
def test_task_rules_select_exactly(
    case: str, rules: dict[str, Any], expected: set[str], refs: dict[str, Any], org: Organization, alice: Any
) -> None:
    q = compile_rules("task", rules, alice, TODAY)
    assert matching("task", q, "subject") == expected


def test_compile_refuses_a_stored_filter_that_no_longer_validates(alice: Any) -> None:
    # Skipping it would narrow what syncs and remove items from the mailbox.
    with pytest.raises(ValidationError, match="unknown field 'colour'"):
        compile_rules("contact", group(row("colour", "eq", "red")), alice, TODAY)


# Validation ------------------------------------------------------------------------------

INVALID = [
    (
        "unknown field",
        "contact",
        group(row("owner", "is_me"), row("colour", "eq", "red")),
        "Rule 2: unknown field 'colour'",
    ),
    ("field of another type", "task", group(row("email", "eq", "x")), "Rule 1: unknown field 'email'"),
    ("operator", "contact", group(row("is_active", "contains", "t")), "Rule 1: operator 'contains' does not apply"),
    ("is_me on text", "contact", group(row("email", "is_me")), "operator 'is_me' does not apply to email"),
    ("choice value", "task", group(row("status", "eq", "done")), "Rule 1 (status): 'done' is not one of"),
    ("choice in", "task", group(row("priority", "in", ["high", "urgent"])), "'urgent' is not one of"),
    ("empty in", "contact", group(row("last_name", "in", [])), "needs a non-empty list"),
    ("in not a list", "contact", group(row("last_name", "in", "Ames")), "needs a non-empty list"),
    ("text value", "contact", group(row("email", "eq", 5)), "the value must be text"),
    ("bool value", "contact", group(row("is_active", "eq", "yes")), "must be true or false"),
    ("days", "task", group(row("due", "on_or_after_days", "soon")), "Rule 1 (due): the number of days"),
    ("fractional days", "task", group(row("due", "on_or_after_days", 1.5)), "whole number"),
    ("days as bool", "task", group(row("due", "on_or_after_days", True)), "whole number"),
    ("too many days", "task", group(row("due", "on_or_after_days", 100000)), "between"),
    ("user id", "contact", group(row("owner", "eq", "alice")), "must be a user id"),
    ("record id", "contact", group(row("account", "eq", "acme")), "the id of an account"),
    ("match", "contact", {"match": "some", "rules": []}, "match must be 'all' or 'any'"),
    ("rules not a list", "contact", {"match": "all", "rules": {}}, "'rules' must be a list"),
    ("row not an object", "contact", group("owner is me"), "Rule 1: a rule must be an object"),
    ("row key", "contact", group({**row("owner", "is_me"), "negate": True}), "Rule 1: unknown keys negate"),
    ("group not an object", "contact", [], "The filter: a group must be an object"),
    ("nested row", "contact", group(row("owner", "is_me"), group(row("x", "eq", "y"))), "Rule 2.1: unknown field 'x'"),
    ("too deep", "contact", group(group(group(group()))), "Rule 1.1.1: groups nest at most 3 deep"),
    ("record type", "lead", group(), "Unknown record type 'lead'"),
]


@pytest.mark.parametrize(("case", "record_type", "rules", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_validation_names_the_problem(case: str, record_type: str, rules: Any, message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_rules(record_type, rules)
    assert message in excinfo.value.messages[0]


def test_validation_normalises() -> None:
    account_id = "4F2B1C7E-0D43-4C1B-9A55-0B0C3B2A1D00"
    rules = {
        "rules": [
            {"field": "owner", "operator": "is_me", "value": "ignored"},
            {"field": "is_active", "operator": "eq", "value": "true"},
            {"field": "owner", "operator": "in", "value": ["7", 8]},
            group(row("account", "eq", account_id), match="any"),
        ]
    }
    assert validate_rules("contact", rules) == {
        "match": "all",
        "rules": [
            row("owner", "is_me", None),
            row("is_active", "eq", True),
            row("owner", "in", [7, 8]),
            group(row("account", "eq", account_id.lower()), match="any"),
        ],
    }
    assert validate_rules("task", {"rules": [row("due", "on_or_before_days", "-3")]})["rules"][0]["value"] == -3


def test_validation_accepts_empty_rules_and_three_levels() -> None:
    assert validate_rules("contact", {}) == group()
    assert validate_rules("contact", None) == group()
    deepest = group(group(group(row("owner", "is_me"))))
    assert validate_rules("contact", deepest) == deepest


def test_default_filters_validate() -> None:
    for default in DEFAULT_FILTERS:
        assert validate_rules(default["record_type"], default["rules"]) == default["rules"]


# A user's filters ------------------------------------------------------------------------


def test_no_enabled_filter_means_the_type_does_not_sync(org: Organization, alice: Any) -> None:
    no_filters(alice)
    assert filter_q(alice, org, "contact", TODAY) is None
    add_filter(org, alice, "contact", group(), enabled=False)
    add_filter(org, alice, "task", group())
    add_filter(org, None, "contact", group())  # a template is not alice's
    assert filter_q(alice, org, "contact", TODAY) is None
    assert filter_q(alice, org, "task", TODAY) is not None


def test_adding_a_filter_widens(refs: dict[str, Any], org: Organization, alice: Any, bob: Any) -> None:
    no_filters(alice)
    add_filter(org, alice, "contact", group(row("owner", "is_me"), row("is_active", "eq", True)))
    assert matching("contact", filter_q(alice, org, "contact", TODAY), "last_name") == {"Ames"}

    add_filter(org, alice, "contact", group(row("job_title", "eq", "cto")))
    assert matching("contact", filter_q(alice, org, "contact", TODAY), "last_name") == {"Ames", "Cat"}

    # An empty filter matches everything in the organization: OR-ing it must not drop it.
    add_filter(org, alice, "contact", group())
    assert matching("contact", filter_q(alice, org, "contact", TODAY), "last_name") == {"Ames", "Ben", "Cat"}


def test_filters_of_others_and_disabled_ones_do_not_count(
    refs: dict[str, Any], org: Organization, other_org: Organization, alice: Any, bob: Any, system: Actor
) -> None:
    no_filters(alice)
    Membership.add(system, alice, other_org, Role.USER)
    add_filter(org, alice, "contact", group(row("owner", "is_me")))
    add_filter(org, alice, "contact", group(), enabled=False)
    add_filter(org, bob, "contact", group())
    add_filter(org, None, "contact", group())
    add_filter(other_org, alice, "contact", group())
    assert matching("contact", filter_q(alice, org, "contact", TODAY), "last_name") == {"Ames", "Ben"}


def test_filter_q_stays_in_the_organization(refs: dict[str, Any], org: Organization, alice: Any) -> None:
    no_filters(alice)
    add_filter(org, alice, "contact", group())
    q = filter_q(alice, org, "contact", TODAY)
    assert matching("contact", q, "last_name") == {"Ames", "Ben", "Cat"}  # not Globex's Dan


def test_filter_q_uses_the_relative_date(refs: dict[str, Any], org: Organization, alice: Any) -> None:
    no_filters(alice)
    add_filter(org, alice, "task", group(row("due", "on_or_after_days", 0)))
    assert matching("task", filter_q(alice, org, "task", TODAY), "subject") == {"due today", "due tomorrow"}
    tomorrow = TODAY + datetime.timedelta(days=1)
    assert matching("task", filter_q(alice, org, "task", tomorrow), "subject") == {"due tomorrow"}


def test_filter_q_reads_only_the_filters(
    refs: dict[str, Any], org: Organization, alice: Any, django_assert_num_queries: Any
) -> None:
    add_filter(org, alice, "appointment", group(row("regarding_contact", "eq", refs["ann"])))
    add_filter(org, alice, "appointment", group(row("start", "on_or_after_days", 0), row("owner", "is_me")))
    with django_assert_num_queries(1) as captured:
        q = filter_q(alice, org, "appointment", TODAY)
    assert q is not None
    assert "crm_syncfilter" in captured.captured_queries[0]["sql"]
    assert "crm_appointment" not in captured.captured_queries[0]["sql"]


def test_filter_q_defaults_to_today(refs: dict[str, Any], org: Organization, alice: Any) -> None:
    no_filters(alice)
    add_filter(org, alice, "task", group(row("due", "on_or_after_days", 0)))
    q = filter_q(alice, org, "task")
    assert q == filter_q(alice, org, "task", timezone.localdate())


# Fingerprint -----------------------------------------------------------------------------


def test_fingerprint_changes_when_the_filters_do(org: Organization, alice: Any) -> None:
    no_filters(alice)
    seen = [filters_fingerprint(alice, org, "contact")]

    def changed() -> None:
        now = filters_fingerprint(alice, org, "contact")
        assert now not in seen
        assert len(now) == 64
        seen.append(now)

    first = add_filter(org, alice, "contact", group(row("owner", "is_me")))
    changed()
    second = add_filter(org, alice, "contact", group())
    changed()
    first.rules = group(row("owner", "is_me"), row("is_active", "eq", True))
    first.save()
    changed()
    second.enabled = False
    second.save()
    changed()
    first.delete()
    # Only the disabled one is left: the same as having none.
    assert filters_fingerprint(alice, org, "contact") == seen[0]


def test_fingerprint_ignores_everything_else(
    refs: dict[str, Any], org: Organization, other_org: Organization, alice: Any, bob: Any
) -> None:
    no_filters(alice)
    add_filter(org, alice, "appointment", group(row("start", "on_or_after_days", -30)))
    before = filters_fingerprint(alice, org, "appointment")
    assert filters_fingerprint(alice, org, "appointment") == before

    add_filter(org, alice, "contact", group())  # another type
    add_filter(org, bob, "appointment", group())  # another user
    add_filter(org, None, "appointment", group())  # a template
    add_filter(org, alice, "appointment", group(), enabled=False)  # disabled
    Appointment.objects.filter(organization=org).update(subject="renamed")  # the records
    # The day passing changes what a relative date selects, not the filters.
    assert filter_q(alice, org, "appointment", TODAY) != filter_q(
        alice, org, "appointment", TODAY + datetime.timedelta(1)
    )
    assert filters_fingerprint(alice, org, "appointment") == before
    assert filters_fingerprint(alice, other_org, "appointment") != before


# Defaults and templates ------------------------------------------------------------------


def test_a_new_member_gets_the_defaults(org: Organization, system: Actor) -> None:
    carol = make_user("carol")
    Membership.add(system, carol, org, Role.USER)

    filters = SyncFilter.objects.filter(user=carol, organization=org)
    assert {(f.record_type, f.name, f.enabled) for f in filters} == {
        ("contact", "My active contacts", True),
        ("appointment", "My appointments from 30 days ago", True),
        ("task", "My open tasks", True),
    }
    assert {f.record_type: f.rules for f in filters} == {d["record_type"]: d["rules"] for d in DEFAULT_FILTERS}
    events = AuditEvent.objects.filter(action="sync_filter.created", object_id__in=[str(f.pk) for f in filters])
    assert events.count() == 3
    assert {(e.actor_name, e.organization_id) for e in events} == {("sync filters", org.pk)}


def test_the_default_filters_select_my_active_contacts_and_open_tasks(
    refs: dict[str, Any], org: Organization, alice: Any
) -> None:
    # alice joined through the fixture and has the defaults.
    assert matching("contact", filter_q(alice, org, "contact", TODAY), "last_name") == {"Ames"}
    assert matching("task", filter_q(alice, org, "task", TODAY), "subject") == {"yesterday", "undated"}
    with timezone.override(BERLIN):
        q = filter_q(alice, org, "appointment", TODAY)
    assert matching("appointment", q, "subject") == {"early on the 14th", "today", "tonight"}


def test_a_new_member_gets_the_organizations_templates(
    org: Organization, other_org: Organization, system: Actor
) -> None:
    add_filter(org, None, "contact", group(row("job_title", "contains", "sales")), name="Sales contacts")
    add_filter(org, None, "task", group(), name="All tasks", enabled=False)
    add_filter(other_org, None, "appointment", group(), name="Globex's template")
    carol = make_user("carol")
    Membership.add(system, carol, org, Role.USER)

    copies = SyncFilter.objects.filter(user=carol)
    assert {f.name: (f.organization_id, f.record_type, f.enabled, f.rules) for f in copies} == {
        "Sales contacts": (org.pk, "contact", True, group(row("job_title", "contains", "sales"))),
        "All tasks": (org.pk, "task", False, group()),
    }
    assert SyncFilter.objects.filter(organization=org, user=None).count() == 2
    assert (
        AuditEvent.objects.filter(action="sync_filter.created", object_id__in=[str(f.pk) for f in copies]).count() == 2
    )


def test_joining_a_second_organization_gives_its_filters_there(
    org: Organization, other_org: Organization, alice: Any, system: Actor
) -> None:
    Membership.add(system, alice, other_org, Role.USER)
    assert SyncFilter.objects.filter(user=alice, organization=org).count() == 3
    assert SyncFilter.objects.filter(user=alice, organization=other_org).count() == 3


def test_ensure_default_filters_is_idempotent(org: Organization, alice: Any, system: Actor) -> None:
    before = set(SyncFilter.objects.filter(user=alice).values_list("pk", flat=True))
    assert ensure_default_filters(alice, org, system) == []
    assert set(SyncFilter.objects.filter(user=alice).values_list("pk", flat=True)) == before


def test_a_user_with_any_filter_gets_no_defaults(org: Organization, alice: Any, system: Actor) -> None:
    no_filters(alice)
    add_filter(org, alice, "task", group(), enabled=False)
    assert ensure_default_filters(alice, org, system) == []
    assert SyncFilter.objects.filter(user=alice).count() == 1


def test_a_user_without_filters_gets_them_again(org: Organization, alice: Any, system: Actor) -> None:
    no_filters(alice)
    created = ensure_default_filters(alice, org, system)
    assert sorted(f.name for f in created) == sorted(d["name"] for d in DEFAULT_FILTERS)
    # The defaults are copied, not shared: changing one leaves DEFAULT_FILTERS alone.
    created[0].rules["rules"].clear()
    assert all(d["rules"]["rules"] for d in DEFAULT_FILTERS)
