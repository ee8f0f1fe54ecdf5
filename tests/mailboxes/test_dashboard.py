"""The administrator's dashboard: counts by approval and by Test & Enable status."""

from __future__ import annotations

import re
from typing import Any

import pytest

from audit.log import Actor
from mailboxes.models import Mailbox, Organization, TestStatus
from tests.conftest import client_for, make_mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailboxes(
    org: Organization, alice_mailbox: Mailbox, bob: Any, profile: Any, pop3_profile: Any, other_mailbox: Mailbox
) -> None:
    """Acme: alice pending/not run, bob approved/success, a queue rejected/failure, one without address
    (failure); Globex: gina approved, never counted for Acme."""
    system = Actor.system()
    bobs = make_mailbox(org, bob, "bob@example.com", profile, test_overall=TestStatus.SUCCESS)
    bobs.approve(system)
    sales = make_mailbox(
        org, None, "sales@example.com", profile, owner_type="queue", queue_name="Sales", test_overall=TestStatus.FAILURE
    )
    sales.reject(system)
    make_mailbox(org, None, "", profile, owner_type="queue", queue_name="Unnamed", test_overall=TestStatus.FAILURE)
    other_mailbox.approve(system)


def cells(html: str, table: str) -> dict[str, int]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return {status: int(n) for status, n in re.findall(r'data-status="(\w+)">(\d+)<', body)}


def test_it_counts_mailboxes_by_approval_and_test_status(admin: Any, mailboxes: None) -> None:
    response = client_for(admin).get("/dashboard/")

    assert response.status_code == 200
    assert response.context["total"] == 4
    assert response.context["profiles"] == 2
    assert [(s.value, n) for s, n in response.context["by_approval"]] == [
        ("empty", 1),
        ("pending", 1),
        ("approved", 1),
        ("rejected", 1),
    ]
    html = response.content.decode()
    assert cells(html, "by-approval") == {"empty": 1, "pending": 1, "approved": 1, "rejected": 1}
    assert cells(html, "by-test") == {"not_run": 1, "success": 1, "failure": 2}
    assert 'href="/mailboxes/">4</a>' in html
    assert "2 server profiles" in html


def test_each_count_links_to_the_filtered_list(admin: Any, mailboxes: None) -> None:
    html = client_for(admin).get("/dashboard/").content.decode()
    assert 'href="/mailboxes/?approval=pending"' in html
    assert 'href="/mailboxes/?status=failure"' in html
    # and the list agrees with the count
    listed = client_for(admin).get("/mailboxes/", {"status": "failure"}).context["page"].paginator.count
    assert listed == 2


def test_the_outsider_counts_only_globex(outsider: Any, mailboxes: None) -> None:
    response = client_for(outsider).get("/dashboard/")
    assert response.context["total"] == 1
    assert response.context["profiles"] == 1
    assert cells(response.content.decode(), "by-approval") == {"empty": 0, "pending": 0, "approved": 1, "rejected": 0}


def test_an_empty_organization_shows_zeros(admin: Any) -> None:
    response = client_for(admin).get("/dashboard/")
    assert response.context["total"] == 0
    assert set(cells(response.content.decode(), "by-test").values()) == {0}


@pytest.mark.parametrize("persona", ["approver", "auditor", "alice", "charlie"])
def test_it_refuses_other_roles(request: pytest.FixtureRequest, persona: str) -> None:
    assert client_for(request.getfixturevalue(persona)).get("/dashboard/").status_code == 403


def test_its_tables_scroll_on_their_own(admin: Any, mailboxes: None) -> None:
    html = client_for(admin).get("/dashboard/").content.decode()
    for table in ("by-approval", "by-test"):
        assert f'<div class="table-responsive">\n      <table class="table table-sm mb-0" id="{table}">' in html
