"""What an audit event shows: field names, values and links in words, never a secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.urls import reverse
from django.utils import formats, timezone

from audit.display import EMPTY, attach_object_urls, display_value, get_field, object_urls
from audit.log import MASK, MASK_CHANGED, Actor, record
from audit.models import AuditEvent
from mailboxes.models import Mailbox, Organization
from tests.conftest import make_mailbox
from tests.crm.test_views import make_record


def event(action: str, changes: dict[str, Any], object_type: str = "mailboxes.mailbox") -> AuditEvent:
    return AuditEvent(action=action, object_type=object_type, object_id="1", object_repr="x", changes=changes)


def shown(e: AuditEvent) -> list[tuple[str, Any, Any]]:
    return [(c.label, str(c.before), str(c.after)) for c in e.change_list]


def test_nothing_recorded_is_a_dash_but_false_and_zero_are_values() -> None:
    assert display_value(None, None) == EMPTY
    assert display_value(None, "") == EMPTY
    assert str(display_value(None, False)) == "No"
    assert str(display_value(None, True)) == "Yes"
    assert display_value(None, 0) == 0


def test_a_choice_shows_its_label_and_an_unknown_value_as_recorded() -> None:
    field = get_field("mailboxes.mailbox", "act_method")
    assert str(display_value(field, "server_side")) == "Server-side synchronization"
    assert display_value(field, "retired_method") == "retired_method"


def test_rules_show_as_json() -> None:
    assert display_value(None, {"match": "all", "rules": []}) == '{"match": "all", "rules": []}'


def test_a_recorded_time_shows_in_the_page_format() -> None:
    e = event("mailbox.tested", {"tested_at": [None, "2025-03-04T05:06:07+00:00"]})
    when = timezone.localtime(datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC))
    assert shown(e) == [("tested", EMPTY, formats.date_format(when, "DATETIME_FORMAT"))]


def test_a_mailbox_event_shows_its_choices_and_fields_in_words() -> None:
    e = event("mailbox.updated", {"incoming_method": ["none", "server_side"], "enabled_act": [True, False]})
    rows = shown(e)
    assert rows[0][1:] == ("None", "Server-side synchronization")
    assert rows[1][1:] == ("Yes", "No")
    assert "incoming_method" not in rows[0][0] and "enabled_act" not in rows[1][0]


def test_keys_that_are_not_fields_borrow_names_and_choices() -> None:
    assert shown(event("mailbox.sync_requested", {"channel": ["", "act"]})) == [
        ("channel", EMPTY, "Appointments, contacts and tasks")
    ]
    assert shown(event("mailbox.item_released", {"item": ["", "contact 42"], "state": ["quarantined", "error"]})) == [
        ("item", EMPTY, "contact 42"),
        ("state", "Quarantined", "Error"),
    ]


def test_a_failed_test_names_each_channel() -> None:
    e = event("mailbox.test_failed", {"incoming": ["", "Login failed"], "act": ["", "No EWS"]})
    assert shown(e) == [
        ("Incoming email", EMPTY, "Login failed"),
        ("Appointments, contacts and tasks", EMPTY, "No EWS"),
    ]


def test_an_event_of_a_model_that_is_gone_still_shows() -> None:
    e = event("widget.updated", {"is_blue": [False, True], "shade_code": ["a", "b"]}, object_type="gone.widget")
    assert shown(e) == [("is blue", "No", "Yes"), ("shade code", "a", "b")]
    assert e.action_label == "Widget updated"
    assert e.object_type_label == "Widget"
    assert e.object_url is None


def test_odd_changes_do_not_crash() -> None:
    assert shown(event("mailbox.updated", {"address": "just a value"})) == [("email address", EMPTY, "just a value")]


@pytest.mark.django_db
def test_secrets_show_only_as_masks(org: Organization, alice_mailbox: Mailbox) -> None:
    loaded = Mailbox.objects.get(pk=alice_mailbox.pk)
    loaded.password = "never-shown-pw"
    loaded.save_audited(Actor(name="admin"))

    (change,) = AuditEvent.objects.for_object(alice_mailbox).get().change_list
    assert (change.before, change.after) == (EMPTY, MASK_CHANGED)
    assert "never-shown-pw" not in repr(change)
    assert MASK in MASK_CHANGED


@pytest.mark.django_db
def test_links_go_to_objects_that_exist_with_one_query_per_type(
    org: Organization,
    alice_mailbox: Mailbox,
    bob: Any,
    profile: Any,
    django_assert_num_queries: Any,
) -> None:
    actor = Actor(name="admin")
    gone = make_mailbox(org, bob, "bob@example.com", profile)
    gone.approve(actor)
    gone_id = str(gone.pk)
    gone.delete_audited(actor)
    alice_mailbox.approve(actor)
    odd = record(actor, "mailbox.updated", org, organization=org)
    odd.object_type, odd.object_id = "mailboxes.mailbox", "not-a-uuid"
    events = [*AuditEvent.objects.filter(object_type="mailboxes.mailbox"), odd]

    with django_assert_num_queries(1):
        urls = object_urls(events)
    assert urls == {("mailboxes.mailbox", str(alice_mailbox.pk)): f"/mailboxes/{alice_mailbox.pk}/"}

    with django_assert_num_queries(1):
        attach_object_urls(events, [org.pk])
    with django_assert_num_queries(0):
        assert {e.object_id: e.object_url for e in events} == {
            str(alice_mailbox.pk): f"/mailboxes/{alice_mailbox.pk}/",
            gone_id: None,
            "not-a-uuid": None,
        }


@pytest.mark.django_db
def test_mailboxes_profiles_and_crm_records_have_pages(org: Organization, alice: Any, alice_mailbox: Mailbox) -> None:
    contact = make_record("contact", org, alice)
    task = make_record("task", org, alice)
    assert alice_mailbox.get_absolute_url() == reverse("mailbox-detail", args=[alice_mailbox.pk])
    assert alice_mailbox.profile.get_absolute_url() == f"/profiles/{alice_mailbox.profile_id}/"
    assert contact.get_absolute_url() == f"/crm/contacts/{contact.pk}/"
    assert task.get_absolute_url() == f"/crm/tasks/{task.pk}/"


@pytest.mark.django_db
def test_links_go_only_to_objects_of_the_organizations_the_viewer_administers(
    org: Organization, other_org: Organization, alice: Any, alice_mailbox: Mailbox, other_mailbox: Mailbox
) -> None:
    actor = Actor(name="admin")
    contact = make_record("contact", org, alice)
    events = [
        record(actor, "mailbox.updated", alice_mailbox, organization=org),
        record(actor, "server_profile.updated", alice_mailbox.profile, organization=org),
        record(actor, "contact.updated", contact, organization=org),
        record(actor, "mailbox.updated", other_mailbox, organization=other_org),
    ]
    acme = {
        ("mailboxes.mailbox", str(alice_mailbox.pk)): f"/mailboxes/{alice_mailbox.pk}/",
        ("mailboxes.emailserverprofile", str(alice_mailbox.profile_id)): f"/profiles/{alice_mailbox.profile_id}/",
        ("crm.contact", str(contact.pk)): f"/crm/contacts/{contact.pk}/",
    }
    globex = {("mailboxes.mailbox", str(other_mailbox.pk)): f"/mailboxes/{other_mailbox.pk}/"}

    assert object_urls(events) == {**acme, **globex}  # whoever looks
    assert object_urls(events, [org.pk]) == acme
    assert object_urls(events, [other_org.pk]) == globex


@pytest.mark.django_db
def test_a_viewer_who_administers_nothing_gets_no_link_and_costs_no_query(
    org: Organization, alice_mailbox: Mailbox, django_assert_num_queries: Any
) -> None:
    events = [record(Actor(name="admin"), "mailbox.updated", alice_mailbox, organization=org)]
    with django_assert_num_queries(0):
        attach_object_urls(events, [])
    assert events[0].object_url is None


@pytest.mark.django_db
def test_a_page_of_a_model_without_organization_is_not_linked_for_a_viewer(
    org: Organization, alice: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    monkeypatch.setattr(type(alice), "get_absolute_url", lambda self: f"/users/{self.pk}/", raising=False)
    events = [record(Actor.system(), "user.locked_out", alice, organization=org)]

    assert object_urls(events) == {("auth.user", str(alice.pk)): f"/users/{alice.pk}/"}
    with django_assert_num_queries(0):
        assert object_urls(events, [org.pk]) == {}


@pytest.mark.django_db
def test_objects_without_a_page_cost_no_query(org: Organization, alice: Any, django_assert_num_queries: Any) -> None:
    events = list(AuditEvent.objects.filter(object_type="mailboxes.membership"))
    assert events
    with django_assert_num_queries(0):
        assert object_urls(events) == {}
