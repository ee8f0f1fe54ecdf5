"""The audit log page: an organization's events for its administrators and auditors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from audit.log import Actor, record
from audit.models import AuditEvent
from mailboxes.models import Mailbox, Organization
from tests.conftest import client_for

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


def rows(response: Any) -> list[tuple[str, str]]:
    """(action, object) of each row in the page's event table."""
    html = response.content.decode().split('id="events"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<td><code>(.*?)</code></td>\s*<td>(.*?)</td>", html)


def test_auditor_sees_the_events_of_their_organization_only(auditor: Any, events: None) -> None:
    response = client_for(auditor).get("/audit/")

    assert response.status_code == 200
    shown = rows(response)
    assert ("mailbox.approved", "alice@example.com") in shown
    assert ("mailbox.updated", "alice@example.com") in shown
    assert ("membership.created", "auditor in Acme (Auditor)") in shown
    assert all(obj != "gina@globex.example" and "Globex" not in obj for _action, obj in shown)
    assert "system.keys_rotated" not in response.content.decode()
    org_ids = {e.organization_id for e in response.context["page"].object_list}
    assert len(org_ids) == 1
    assert len(shown) == AuditEvent.objects.filter(organization_id__in=org_ids).count()


def test_the_outsider_sees_only_globex(outsider: Any, events: None) -> None:
    shown = rows(client_for(outsider).get("/audit/"))
    assert ("mailbox.approved", "gina@globex.example") in shown
    assert "alice@example.com" not in [obj for _action, obj in shown]


def test_secrets_are_shown_masked(auditor: Any, events: None) -> None:
    html = client_for(auditor).get("/audit/", {"action": "mailbox.updated"}).content.decode()
    assert "never-shown-pw" not in html
    assert "******** (changed)" in html


def test_it_filters_by_action_prefix(auditor: Any, events: None) -> None:
    client = client_for(auditor)

    assert rows(client.get("/audit/", {"action": "mailbox."})) == [
        ("mailbox.updated", "alice@example.com"),
        ("mailbox.approved", "alice@example.com"),
    ]
    assert rows(client.get("/audit/", {"action": "mailbox.approved"})) == [("mailbox.approved", "alice@example.com")]
    assert {a for a, _ in rows(client.get("/audit/", {"action": " membership "}))} == {"membership.created"}
    response = client.get("/audit/", {"action": "no.such"})
    assert rows(response) == []
    assert "No events." in response.content.decode()


def test_it_pages_and_keeps_the_filter(auditor: Any, events: None, settings: Any) -> None:
    settings.PAGE_SIZE = 1
    client = client_for(auditor)
    first = client.get("/audit/", {"action": "mailbox."})
    second = client.get("/audit/", {"action": "mailbox.", "page": 2})

    assert rows(first) == [("mailbox.updated", "alice@example.com")]
    assert rows(second) == [("mailbox.approved", "alice@example.com")]
    assert "?action=mailbox.&amp;page=2" in first.content.decode()


def test_the_administrator_sees_it_too(admin: Any, events: None) -> None:
    assert ("mailbox.approved", "alice@example.com") in rows(client_for(admin).get("/audit/"))


@pytest.mark.parametrize("persona", ["approver", "alice", "charlie"])
def test_it_refuses_other_roles(request: pytest.FixtureRequest, persona: str) -> None:
    assert client_for(request.getfixturevalue(persona)).get("/audit/").status_code == 403


def test_anonymous_is_sent_to_login(db: Any) -> None:
    response = Client().get("/audit/")
    assert response.status_code == 302
    assert response.url == "/login/?next=/audit/"
