"""The audit log page: an organization's events for its administrators and auditors, in words."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.log import Actor, record
from audit.models import AuditEvent
from mailboxes.models import Mailbox, Membership, Organization, Role
from tests.conftest import client_for, make_mailbox
from tests.crm.test_views import make_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(org: Organization, other_org: Organization, alice_mailbox: Mailbox, other_mailbox: Mailbox) -> None:
    """Acme: alice's mailbox approved and edited; Globex: gina's approved; one event of no organization."""
    acme_admin = Actor(name="acme-admin", ip="192.0.2.1")
    alice_mailbox.approve(acme_admin)
    alice_mailbox = Mailbox.objects.get(pk=alice_mailbox.pk)
    alice_mailbox.password = "never-shown-pw"
    alice_mailbox.save_audited(acme_admin)
    other_mailbox.approve(Actor(name="globex-admin"))
    record(Actor.system("maintenance"), "system.keys_rotated", org)  # no organization recorded


@pytest.fixture
def bobs_sync(events: None, bob: Any, org: Organization, alice_mailbox: Mailbox) -> AuditEvent:
    """bob asks for a sync of alice's mailbox (his membership is an event of its own)."""
    return record(
        Actor(user=bob, name="bob"),
        "mailbox.sync_requested",
        alice_mailbox,
        changes={"channel": ["", "act"]},
        organization=org,
    )


def table(response: Any) -> str:
    return response.content.decode().split('id="events"', 1)[1].split("</table>", 1)[0]


def rows(response: Any) -> list[tuple[str, str]]:
    """(action, object) of each row in the page's event table, as a person reads them."""
    found = re.findall(r'<td class="action">(.*?)</td>\s*<td class="object">(.*?) <span', table(response))
    return [(action, re.sub(r"<[^>]+>", "", obj)) for action, obj in found]


def test_auditor_sees_the_events_of_their_organization_only(auditor: Any, events: None) -> None:
    response = client_for(auditor).get("/audit/")

    assert response.status_code == 200
    shown = rows(response)
    assert ("Email address approved", "alice@example.com") in shown
    assert ("Mailbox changed", "alice@example.com") in shown
    assert ("Member added", "auditor in Acme (Auditor)") in shown
    assert all(obj != "gina@globex.example" and "Globex" not in obj for _action, obj in shown)
    assert "System keys rotated" not in response.content.decode()
    org_ids = {e.organization_id for e in response.context["page"].object_list}
    assert len(org_ids) == 1
    assert len(shown) == AuditEvent.objects.filter(organization_id__in=org_ids).count()


def test_the_outsider_sees_only_globex(outsider: Any, events: None) -> None:
    shown = rows(client_for(outsider).get("/audit/"))
    assert ("Email address approved", "gina@globex.example") in shown
    assert "alice@example.com" not in [obj for _action, obj in shown]


def test_secrets_are_shown_masked(auditor: Any, events: None) -> None:
    html = client_for(auditor).get("/audit/", {"action": "mailbox.updated"}).content.decode()
    assert "never-shown-pw" not in html
    assert "******** (changed)" in html


def test_it_shows_action_labels_not_codes(auditor: Any, events: None) -> None:
    html = table(client_for(auditor).get("/audit/"))
    assert "Email address approved" in html
    assert "Member added" in html
    for code in ("mailbox.approved", "mailbox.updated", "membership.created"):
        assert code not in html


def test_an_unknown_action_shows_in_words(auditor: Any, org: Organization) -> None:
    record(Actor.system("maintenance"), "system.keys_rotated", org, organization=org)
    html = table(client_for(auditor).get("/audit/"))
    assert "System keys rotated" in html
    assert "system.keys_rotated" not in html


def test_choices_show_their_labels_and_fields_their_names(auditor: Any, events: None) -> None:
    html = table(client_for(auditor).get("/audit/", {"action": "mailbox.approved"}))
    assert '<strong title="approval_status">email address approval</strong>: Pending approval → Approved' in html
    assert ">pending<" not in html and "→ approved" not in html


def test_booleans_show_yes_or_no_and_a_dash_only_for_nothing(auditor: Any, org: Organization) -> None:
    loaded = Organization.objects.get(pk=org.pk)
    loaded.ignore_logical_deletes = True
    loaded.save_audited(Actor(name="acme-admin"))
    new = Organization(name="Initech")
    new.save_audited(Actor(name="acme-admin"))
    record(Actor(name="acme-admin"), "organization.updated", new, changes={"name": ["", "Initech"]}, organization=org)

    html = table(client_for(auditor).get("/audit/", {"action": "organization."}))
    assert "No → Yes" in html  # ignore_logical_deletes: False is "No", not a dash
    assert "— → Initech" in html
    assert "True" not in html and "False" not in html


def test_an_existing_object_is_linked_and_a_deleted_one_is_not(
    admin: Any, org: Organization, alice_mailbox: Mailbox, bob: Any, profile: Any
) -> None:
    actor = Actor(name="acme-admin")
    alice_mailbox.approve(actor)
    gone = make_mailbox(org, bob, "bob@example.com", profile)
    gone.approve(actor)
    gone_url = reverse("mailbox-detail", args=[gone.pk])
    gone.delete_audited(actor)

    html = table(client_for(admin).get("/audit/"))
    assert f'<a href="/mailboxes/{alice_mailbox.pk}/">alice@example.com</a>' in html
    assert "bob@example.com" in html
    assert gone_url not in html


def test_the_administrator_gets_links_to_profiles_and_crm_records(
    admin: Any, org: Organization, alice: Any, profile: Any
) -> None:
    contact = make_record("contact", org, alice)
    record(Actor(name="acme-admin"), "server_profile.updated", profile, organization=org)
    record(Actor(name="acme-admin"), "contact.updated", contact, organization=org)

    html = table(client_for(admin).get("/audit/"))
    assert f'<a href="/profiles/{profile.pk}/">Exchange</a>' in html
    assert f'<a href="/crm/contacts/{contact.pk}/">{contact}</a>' in html


def test_the_auditor_sees_objects_as_plain_text_as_they_cannot_open_their_pages(
    auditor: Any, org: Organization, alice: Any, alice_mailbox: Mailbox, profile: Any
) -> None:
    contact = make_record("contact", org, alice)
    alice_mailbox.approve(Actor(name="acme-admin"))
    record(Actor(name="acme-admin"), "server_profile.updated", profile, organization=org)
    record(Actor(name="acme-admin"), "contact.updated", contact, organization=org)

    html = table(client_for(auditor).get("/audit/"))
    assert "alice@example.com" in html and "Exchange" in html and str(contact) in html
    assert "<a " not in html
    for url in (f"/mailboxes/{alice_mailbox.pk}/", f"/profiles/{profile.pk}/", f"/crm/contacts/{contact.pk}/"):
        assert client_for(auditor).get(url).status_code == 403


def test_links_only_for_the_organizations_the_person_administers(
    admin: Any, events: None, other_org: Organization, other_mailbox: Mailbox, system: Actor
) -> None:
    """The admin of Acme audits Globex too: Globex's mailbox is named, not linked."""
    Membership.add(system, admin, other_org, Role.AUDITOR)

    html = table(client_for(admin).get("/audit/"))
    assert "gina@globex.example" in html
    assert f"/mailboxes/{other_mailbox.pk}/" not in html
    assert f'<a href="/mailboxes/{Mailbox.objects.get(address="alice@example.com").pk}/">' in html


def test_objects_without_a_page_are_plain_text(auditor: Any, events: None) -> None:
    html = table(client_for(auditor).get("/audit/", {"action": "membership."}))
    assert "auditor in Acme (Auditor)" in html
    assert "<a " not in html


def test_search_finds_an_action_by_a_word_of_its_label(auditor: Any, bobs_sync: AuditEvent) -> None:
    client = client_for(auditor)
    assert rows(client.get("/audit/", {"q": "approved"})) == [("Email address approved", "alice@example.com")]
    assert rows(client.get("/audit/", {"q": " Approved "})) == [("Email address approved", "alice@example.com")]


def test_search_finds_a_person_as_actor_and_as_object(auditor: Any, bobs_sync: AuditEvent) -> None:
    response = client_for(auditor).get("/audit/", {"q": "bob"})

    shown = rows(response)
    assert shown[:2] == [("Sync requested", "alice@example.com"), ("Member added", "bob in Acme (User)")]
    # The rest: the sync filters bob was given when he joined (their user is bob).
    assert {action for action, _obj in shown[2:]} == {"Sync filter created"}
    assert all(e.changes["user"] == [None, "bob"] for e in response.context["page"].object_list[2:])
    assert ("Email address approved", "alice@example.com") not in shown
    assert ("Member added", "alice in Acme (User)") not in shown


def test_search_finds_the_actors_full_name(auditor: Any, bobs_sync: AuditEvent, bob: Any) -> None:
    bob.last_name = "Builder"
    bob.save(update_fields=["last_name"])
    assert rows(client_for(auditor).get("/audit/", {"q": "builder"})) == [("Sync requested", "alice@example.com")]


def test_search_finds_an_action_code(auditor: Any, bobs_sync: AuditEvent) -> None:
    shown = rows(client_for(auditor).get("/audit/", {"q": "mailbox.updated"}))
    assert shown == [("Mailbox changed", "alice@example.com")]


def test_search_needs_every_word(auditor: Any, bobs_sync: AuditEvent) -> None:
    client = client_for(auditor)
    assert rows(client.get("/audit/", {"q": "bob requested"})) == [("Sync requested", "alice@example.com")]
    assert rows(client.get("/audit/", {"q": "bob approved"})) == []


def test_search_finds_changed_values(auditor: Any, org: Organization) -> None:
    loaded = Organization.objects.get(pk=org.pk)
    loaded.tracked_category = 'Ærø "quoted" CRM'
    loaded.save_audited(Actor(name="acme-admin"))
    client = client_for(auditor)

    words = ["Ærø", '"quoted"', "tracked_category", "TRACKED"]
    if connection.vendor == "postgresql":  # SQLite compares letters beyond ASCII case-sensitively
        words.append("ærø")
    for word in words:
        shown = rows(client.get("/audit/", {"q": word}))
        assert shown == [("Organization changed", "Acme")], word


def test_search_stays_within_the_organization(auditor: Any, outsider: Any, bobs_sync: AuditEvent) -> None:
    assert rows(client_for(outsider).get("/audit/", {"q": "approved"})) == [
        ("Email address approved", "gina@globex.example")
    ]
    assert rows(client_for(outsider).get("/audit/", {"q": "bob"})) == []


def test_search_with_no_match_says_so(auditor: Any, bobs_sync: AuditEvent) -> None:
    response = client_for(auditor).get("/audit/", {"q": "nothing like this"})
    assert rows(response) == []
    assert "No events." in response.content.decode()


def test_it_filters_by_action_prefix(auditor: Any, events: None) -> None:
    client = client_for(auditor)

    assert rows(client.get("/audit/", {"action": "mailbox."})) == [
        ("Mailbox changed", "alice@example.com"),
        ("Email address approved", "alice@example.com"),
    ]
    assert rows(client.get("/audit/", {"action": "mailbox.approved"})) == [
        ("Email address approved", "alice@example.com")
    ]
    assert {a for a, _ in rows(client.get("/audit/", {"action": " membership "}))} == {"Member added"}
    response = client.get("/audit/", {"action": "no.such"})
    assert rows(response) == []
    assert "No events." in response.content.decode()


def test_the_action_filter_offers_the_labels(auditor: Any, events: None) -> None:
    html = client_for(auditor).get("/audit/", {"action": "mailbox.approved"}).content.decode()
    assert '<option value="mailbox.approved" selected>Email address approved</option>' in html
    assert '<option value="mailbox.rejected">Email address rejected</option>' in html


def test_search_and_action_filter_combine(auditor: Any, bobs_sync: AuditEvent) -> None:
    client = client_for(auditor)
    assert rows(client.get("/audit/", {"q": "alice", "action": "mailbox.sync_requested"})) == [
        ("Sync requested", "alice@example.com")
    ]
    assert rows(client.get("/audit/", {"q": "bob", "action": "membership."})) == [
        ("Member added", "bob in Acme (User)")
    ]


def test_it_pages_and_keeps_the_filter_and_search(auditor: Any, events: None, settings: Any) -> None:
    settings.PAGE_SIZE = 1
    client = client_for(auditor)
    first = client.get("/audit/", {"action": "mailbox."})
    second = client.get("/audit/", {"action": "mailbox.", "page": 2})
    searched = client.get("/audit/", {"q": "alice example", "action": "mailbox."})

    assert rows(first) == [("Mailbox changed", "alice@example.com")]
    assert rows(second) == [("Email address approved", "alice@example.com")]
    assert "?action=mailbox.&amp;page=2" in first.content.decode()
    assert "?q=alice+example&amp;action=mailbox.&amp;page=2" in searched.content.decode()


def test_the_table_scrolls_in_its_own_container(auditor: Any, events: None) -> None:
    html = client_for(auditor).get("/audit/").content.decode()
    scroller = '<div class="table-responsive" tabindex="0" role="region" aria-labelledby="audit-heading">'
    assert f'{scroller}\n<table class="table table-sm history" id="events">' in html


def test_the_administrator_sees_it_too(admin: Any, events: None) -> None:
    assert ("Email address approved", "alice@example.com") in rows(client_for(admin).get("/audit/"))


@pytest.mark.parametrize("persona", ["approver", "alice", "charlie"])
def test_it_refuses_other_roles(request: pytest.FixtureRequest, persona: str) -> None:
    assert client_for(request.getfixturevalue(persona)).get("/audit/").status_code == 403


def test_anonymous_is_sent_to_login(db: Any) -> None:
    response = Client().get("/audit/")
    assert response.status_code == 302
    assert response.url == "/login/?next=/audit/"


def test_the_page_queries_do_not_grow_with_the_events(auditor: Any, org: Organization, alice_mailbox: Mailbox) -> None:
    client = client_for(auditor)
    change = {"act_method": ["none", "client"]}
    record(Actor(name="x"), "mailbox.updated", alice_mailbox, changes=change, organization=org)
    with CaptureQueriesContext(connection) as few:
        client.get("/audit/", {"q": "alice changed"})
    for _ in range(19):
        record(Actor(name="x"), "mailbox.updated", alice_mailbox, changes=change, organization=org)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/audit/", {"q": "alice changed"})
    assert len(rows(response)) == 20
    assert len(many) == len(few)


def test_the_links_cost_one_query_per_type_however_many_objects(
    admin: Any, org: Organization, alice: Any, profile: Any, settings: Any
) -> None:
    """Mailboxes, profiles and contacts linked on one page: a few queries, not one per event."""
    settings.PAGE_SIZE = 50
    actor = Actor(name="x")
    client = client_for(admin)

    def changes(n: int) -> None:
        for i in range(n):
            mailbox = make_mailbox(org, None, f"q{i}-{n}@example.com", profile, owner_type="queue", queue_name="Q")
            record(actor, "mailbox.updated", mailbox, organization=org)
            record(actor, "server_profile.updated", profile, organization=org)
            record(actor, "contact.updated", make_record("contact", org, alice), organization=org)

    changes(1)
    with CaptureQueriesContext(connection) as few:
        client.get("/audit/")
    changes(10)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/audit/")
    assert table(response).count("<a href=") >= 33
    assert len(many) == len(few)
