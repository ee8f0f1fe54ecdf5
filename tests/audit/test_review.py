"""The audit review: an organization's events for its administrators and auditors, in words; the
filters, the pages, an event's details and an object's history."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.log import Actor, record
from audit.models import AuditEvent
from mailboxes.models import Mailbox, Membership, Organization, Role
from tests.audit.conftest import add_event
from tests.conftest import client_for, make_mailbox
from tests.crm.test_views import make_record

pytestmark = pytest.mark.django_db


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
    assert '<td class="object"><a ' not in html
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
    assert '<td class="object"><a ' not in html


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
    older = first.context["page"].older
    second = client.get("/audit/", {"action": "mailbox.", "before": older})
    searched = client.get("/audit/", {"q": "alice example", "action": "mailbox."})

    assert rows(first) == [("Mailbox changed", "alice@example.com")]
    assert rows(second) == [("Email address approved", "alice@example.com")]
    assert f"?action=mailbox.&amp;before={older}" in first.content.decode()
    assert f"?action=mailbox.&amp;q=alice+example&amp;before={older}" in searched.content.decode()
    assert f"?action=mailbox.&amp;after={second.context['page'].newer}" in second.content.decode()


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


# Filters -----------------------------------------------------------------------------------


def actions(response: Any) -> list[str]:
    return [event.action for event in response.context["page"].object_list]


def test_the_person_filter_keeps_their_events(auditor: Any, bobs_sync: AuditEvent) -> None:
    response = client_for(auditor).get("/audit/", {"person": "bob"})
    assert rows(response) == [("Sync requested", "alice@example.com")]
    assert {e.actor_name for e in response.context["page"].object_list} == {"bob"}
    assert 'value="bob"' in response.content.decode()


def test_the_action_filter_keeps_that_action_only(auditor: Any, bobs_sync: AuditEvent) -> None:
    response = client_for(auditor).get("/audit/", {"action": "mailbox.sync_requested"})
    assert actions(response) == ["mailbox.sync_requested"]


def test_the_object_type_filter_offers_readable_types(auditor: Any, events: None) -> None:
    response = client_for(auditor).get("/audit/", {"object_type": "mailboxes.mailbox"})
    html = response.content.decode()
    assert '<option value="mailboxes.mailbox" selected>Mailbox</option>' in html
    assert '<option value="mailboxes.membership">Membership</option>' in html
    assert {e.object_type for e in response.context["page"].object_list} == {"mailboxes.mailbox"}
    assert actions(response) == ["mailbox.updated", "mailbox.approved"]


def test_the_object_filter_names_and_links_the_object(
    admin: Any, events: None, alice_mailbox: Mailbox, profile: Any
) -> None:
    record(Actor(name="acme-admin"), "server_profile.updated", profile, organization=alice_mailbox.organization)
    query = {"object_type": "mailboxes.mailbox", "object_id": str(alice_mailbox.pk)}
    response = client_for(admin).get("/audit/", query)

    assert actions(response) == ["mailbox.updated", "mailbox.approved"]
    subject = response.content.decode().split('id="subject">', 1)[1].split("</p>", 1)[0]
    assert f'Mailbox: <a href="/mailboxes/{alice_mailbox.pk}/">alice@example.com</a>' in subject
    assert "<h1" in response.content.decode() and "History of alice@example.com" in response.content.decode()


def test_the_organization_filter_offers_the_persons_organizations(
    admin: Any, events: None, other_org: Organization, system: Actor
) -> None:
    Membership.add(system, admin, other_org, Role.AUDITOR)
    client = client_for(admin)

    html = client.get("/audit/").content.decode()
    assert f'<option value="{other_org.pk}">Globex</option>' in html
    globex = client.get("/audit/", {"organization": str(other_org.pk)})
    assert {e.organization_name for e in globex.context["page"].object_list} == {"Globex"}
    both = client.get("/audit/")
    assert {e.organization_name for e in both.context["page"].object_list} == {"Acme", "Globex"}


def test_another_organization_cannot_be_chosen(auditor: Any, events: None, other_org: Organization) -> None:
    response = client_for(auditor).get("/audit/", {"organization": str(other_org.pk)})
    assert "Select a valid choice" in response.content.decode()
    assert response.context["page"].object_list == []


def test_the_date_range_is_inclusive_in_the_viewers_time_zone(auditor: Any, org: Organization, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Copenhagen"
    day = timezone.localdate() + timedelta(days=10)  # events are stamped as they are written: later ones later
    midnight = datetime.combine(day, time.min, tzinfo=ZoneInfo("Europe/Copenhagen"))
    add_event(org, "mailbox.tested", time=midnight - timedelta(seconds=1))  # the day before, 23:59:59
    add_event(org, "mailbox.approved", time=midnight)
    add_event(org, "mailbox.rejected", time=midnight + timedelta(days=1, seconds=-1))  # the day, 23:59:59
    add_event(org, "mailbox.deleted", time=midnight + timedelta(days=1))  # the day after
    client = client_for(auditor)

    the_day = client.get("/audit/", {"date_from": day.isoformat(), "date_to": day.isoformat()})
    assert actions(the_day) == ["mailbox.rejected", "mailbox.approved"]
    since = client.get("/audit/", {"date_from": day.isoformat()})
    assert actions(since) == ["mailbox.deleted", "mailbox.rejected", "mailbox.approved"]
    until = client.get("/audit/", {"date_to": (day - timedelta(days=1)).isoformat(), "action": "mailbox."})
    assert actions(until) == ["mailbox.tested"]


def test_the_date_range_finds_an_event_numbered_after_a_later_one(auditor: Any, org: Organization) -> None:
    """An event is stamped when it is made and numbered when it gets the chain: one that waited
    (here 40 minutes, within CLOCK_MARGIN) for another writer comes after it with an earlier time."""
    day = timezone.localdate() + timedelta(days=10)
    midnight = timezone.make_aware(datetime.combine(day, time.min))
    add_event(org, "mailbox.approved", time=midnight + timedelta(minutes=10))
    add_event(org, "mailbox.rejected", time=midnight - timedelta(minutes=30))  # waited for the chain
    add_event(org, "mailbox.deleted", time=midnight + timedelta(minutes=20))
    client = client_for(auditor)

    assert actions(client.get("/audit/", {"date_from": day.isoformat()})) == ["mailbox.deleted", "mailbox.approved"]
    before = client.get("/audit/", {"date_to": (day - timedelta(days=1)).isoformat(), "action": "mailbox."})
    assert actions(before) == ["mailbox.rejected"]


def test_the_filters_combine(auditor: Any, bobs_sync: AuditEvent) -> None:
    client = client_for(auditor)
    today = timezone.localdate().isoformat()
    both = {"person": "bob", "action": "mailbox.sync_requested", "date_from": today, "q": "alice"}
    assert actions(client.get("/audit/", both)) == ["mailbox.sync_requested"]
    assert actions(client.get("/audit/", {**both, "person": "acme-admin"})) == []
    assert actions(client.get("/audit/", {**both, "date_to": "2000-01-01", "date_from": ""})) == []


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"date_from": "2024-02-30"}, "date_from", "Enter a valid date."),
        ({"date_from": "2024-03-02", "date_to": "2024-03-01"}, "date_to", "The end date is before the start date."),
        ({"action": "drop table"}, "action", "Choose an action from the list."),
        ({"object_type": "../../etc"}, "object_type", "Choose an object type from the list."),
        ({"object_id": "42"}, "object_type", "An object needs its type: choose one."),
        ({"q": "x" * 201}, "q", "Ensure this value has at most 200 characters (it has 201)."),
    ],
)
def test_bad_filter_input_gives_field_errors(
    auditor: Any, events: None, query: dict[str, str], field: str, message: str
) -> None:
    response = client_for(auditor).get("/audit/", query)

    assert response.status_code == 200
    html = response.content.decode()
    assert f'<div class="invalid-feedback d-block" id="id_{field}_error">{message}</div>' in html
    widget = re.search(rf'<(input|select)[^>]*id="id_{field}"[^>]*>', html)
    assert widget and 'aria-invalid="true"' in widget[0] and f"id_{field}_error" in widget[0]
    assert 'id="events"' not in html  # no events shown for a filter that says nothing
    assert "/audit/export" not in html


# Pages (keyset) ----------------------------------------------------------------------------


@pytest.mark.parametrize("window", [20_000, 3])
def test_keyset_paging_walks_every_event_exactly_once(
    auditor: Any, org: Organization, settings: Any, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    """Each page in one window of chain positions, or (a window of 3) in several."""
    monkeypatch.setattr("audit.views.WINDOW", window)
    settings.PAGE_SIZE = 5
    for n in range(23):
        add_event(org, "mailbox.tested", object_repr=f"event {n}")
    expected = list(
        AuditEvent.objects.filter(organization_id=org.pk, action="mailbox.tested").values_list("seq", flat=True)
    )
    client = client_for(auditor)
    query = {"action": "mailbox.tested"}

    older, seen, pages = None, [], []
    while True:
        page = client.get("/audit/", {**query, **({"before": older} if older else {})}).context["page"]
        seen += [e.seq for e in page.object_list]
        pages.append(page)
        if page.older is None:
            break
        older = page.older
    assert seen == expected  # newest first, each once
    assert [len(p.object_list) for p in pages] == [5, 5, 5, 5, 3]
    assert pages[0].newer is None and pages[0].is_newest

    # And back: the newer links from the oldest page.
    newer, back = pages[-1].newer, [e.seq for e in pages[-1].object_list]
    while newer is not None:
        page = client.get("/audit/", {**query, "after": newer}).context["page"]
        back = [e.seq for e in page.object_list] + back
        newer = page.newer
    assert back == expected


def test_pages_merge_the_organizations_in_chain_order(
    admin: Any,
    org: Organization,
    other_org: Organization,
    system: Actor,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events of two organizations, interleaved, searched, a few per window: every match once, newest first."""
    Membership.add(system, admin, other_org, Role.AUDITOR)
    monkeypatch.setattr("audit.views.WINDOW", 2)
    settings.PAGE_SIZE = 3
    for n in range(14):
        add_event((org, other_org)[n % 3 == 0], "mailbox.tested", object_repr=f"{'match' if n % 2 else 'other'} {n}")
    matches = AuditEvent.objects.filter(organization_id__in=[org.pk, other_org.pk]).search("match")
    expected = list(matches.order_by("-seq").values_list("seq", flat=True))
    assert len(expected) > 7
    client = client_for(admin)

    seen, older = [], None
    while True:
        page = client.get("/audit/", {"q": "match", **({"before": older} if older else {})}).context["page"]
        seen += [e.seq for e in page.object_list]
        if (older := page.older) is None:
            break
    assert seen == expected
    assert {e.organization_id for e in AuditEvent.objects.filter(seq__in=seen)} == {org.pk, other_org.pk}


def test_a_page_costs_no_count_and_no_offset(auditor: Any, org: Organization, settings: Any) -> None:
    settings.PAGE_SIZE = 2
    for _ in range(7):
        add_event(org, "mailbox.tested")
    client = client_for(auditor)
    first = client.get("/audit/", {"action": "mailbox.tested"}).context["page"]
    with CaptureQueriesContext(connection) as queries:
        deep = client.get("/audit/", {"action": "mailbox.tested", "before": first.older})
    assert len(deep.context["page"].object_list) == 2
    sql = " ".join(q["sql"].upper() for q in queries)
    assert "COUNT(" not in sql
    assert "OFFSET" not in sql


def test_a_stale_cursor_shows_no_events_and_the_way_to_the_newest(auditor: Any, events: None) -> None:
    html = client_for(auditor).get("/audit/", {"before": 1}).content.decode()
    assert "No events." in html
    assert '<a class="page-link" href="/audit/">Newest</a>' in html


@pytest.mark.parametrize("cursor", ["²", "9" * 5000, "9" * 19, "-1", "1e3", " 7"])
@pytest.mark.parametrize("name", ["before", "after"])
def test_a_malformed_cursor_shows_the_newest_page(auditor: Any, events: None, name: str, cursor: str) -> None:
    client = client_for(auditor)
    response = client.get("/audit/", {name: cursor})
    assert response.status_code == 200
    assert rows(response) == rows(client.get("/audit/"))


# An event's page ---------------------------------------------------------------------------


def mailbox_update(alice_mailbox: Mailbox) -> AuditEvent:
    return AuditEvent.objects.get(action="mailbox.updated", object_id=str(alice_mailbox.pk))


def test_the_event_page_shows_who_when_where_and_what_changed(admin: Any, events: None, alice_mailbox: Mailbox) -> None:
    event = mailbox_update(alice_mailbox)
    response = client_for(admin).get(f"/audit/{event.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 class="h3 mb-3">Mailbox changed</h1>' in html
    assert "acme-admin" in html and "192.0.2.1" in html
    assert "(mailbox.updated)" in html
    assert f'<a href="/mailboxes/{alice_mailbox.pk}/">alice@example.com</a>' in html
    assert f'href="/audit/object/mailboxes.mailbox/{alice_mailbox.pk}/"' in html
    assert 'href="/audit/?person=acme-admin"' in html
    assert 'href="/audit/?action=mailbox.updated"' in html
    changes = html.split('id="changes"', 1)[1].split("</table>", 1)[0]
    assert '<th scope="row" title="password">' in changes
    assert "******** (changed)" in changes and "never-shown-pw" not in html
    chain = html.split('id="chain"', 1)[1].split("</dl>", 1)[0]
    assert f'<dd class="col-sm-9">{event.seq}</dd>' in chain
    assert f"<code>{event.hash}</code>" in chain and f"<code>{event.prev_hash}</code>" in chain
    assert '<dd class="col-sm-9" id="content-intact">Yes</dd>' in chain
    assert '<dd class="col-sm-9" id="linked">Yes</dd>' in chain


def test_the_event_page_names_choices_by_their_labels(auditor: Any, events: None, alice_mailbox: Mailbox) -> None:
    event = AuditEvent.objects.get(action="mailbox.approved", object_id=str(alice_mailbox.pk))
    html = client_for(auditor).get(f"/audit/{event.pk}/").content.decode()
    assert (
        '<th scope="row" title="approval_status">email address approval</th><td>Pending approval</td><td>Approved</td>'
        in html
    )
    assert f"/mailboxes/{alice_mailbox.pk}/" not in html  # the auditor cannot open the mailbox's page


def test_a_changed_event_shows_as_changed(events: None, alice_mailbox: Mailbox) -> None:
    """The database refuses to change an event; a copy changed in memory shows what the page says."""
    from audit.views import ChainCheck

    event = mailbox_update(alice_mailbox)
    assert ChainCheck.of(event) == ChainCheck(content_intact=True, linked=True)
    event.object_repr = "someone-else@example.com"
    assert ChainCheck.of(event).content_intact is False
    event.prev_hash = "0" * 64
    assert ChainCheck.of(event).linked is False


def test_an_event_of_another_organization_is_not_found(
    auditor: Any, outsider: Any, events: None, other_mailbox: Mailbox
) -> None:
    globex = AuditEvent.objects.filter(object_id=str(other_mailbox.pk)).first()
    nobody = AuditEvent.objects.get(action="system.keys_rotated")
    assert client_for(auditor).get(f"/audit/{globex.pk}/").status_code == 404
    assert client_for(auditor).get(f"/audit/{nobody.pk}/").status_code == 404
    assert client_for(outsider).get(f"/audit/{globex.pk}/").status_code == 200


# An object's history -----------------------------------------------------------------------


def test_an_objects_history_lists_its_events_only(auditor: Any, bobs_sync: AuditEvent, alice_mailbox: Mailbox) -> None:
    response = client_for(auditor).get(f"/audit/object/mailboxes.mailbox/{alice_mailbox.pk}/")

    assert response.status_code == 200
    assert actions(response) == ["mailbox.sync_requested", "mailbox.updated", "mailbox.approved"]
    html = response.content.decode()
    assert "<title>History of alice@example.com ·" in html
    assert '<p id="subject">Mailbox: alice@example.com' in html  # no link: auditors cannot open it
    assert 'name="object_type"' not in html  # given by the address
    export = f"/audit/export.csv?object_type=mailboxes.mailbox&amp;object_id={alice_mailbox.pk}"
    assert export in html


def test_an_objects_history_filters_further(auditor: Any, bobs_sync: AuditEvent, alice_mailbox: Mailbox) -> None:
    url = f"/audit/object/mailboxes.mailbox/{alice_mailbox.pk}/"
    response = client_for(auditor).get(url, {"person": "bob", "object_type": "mailboxes.membership"})
    assert actions(response) == ["mailbox.sync_requested"]


def test_an_objects_history_shows_nothing_of_another_organization(
    outsider: Any, events: None, alice_mailbox: Mailbox
) -> None:
    response = client_for(outsider).get(f"/audit/object/mailboxes.mailbox/{alice_mailbox.pk}/")
    assert response.status_code == 200
    assert actions(response) == []
    assert "alice@example.com" not in response.content.decode()


def test_the_history_section_of_an_object_links_its_full_history(
    admin: Any, events: None, alice_mailbox: Mailbox
) -> None:
    html = client_for(admin).get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    assert f'<a href="/audit/object/mailboxes.mailbox/{alice_mailbox.pk}/">Full history</a>' in html


def test_one_organization_is_not_offered_as_a_choice(auditor: Any, events: None) -> None:
    html = client_for(auditor).get("/audit/").content.decode()
    assert '<input type="hidden" name="organization" id="id_organization">' in html
    assert '<select name="organization"' not in html
