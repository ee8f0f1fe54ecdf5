"""Email address approvals: approve/reject one, in bulk, and the approvals page (STYLE.md 10)."""

from __future__ import annotations

from typing import Any

import pytest

from audit.log import Actor
from audit.models import AuditEvent
from mailboxes.models import ApprovalStatus, Mailbox, Organization
from tests.conftest import client_for, make_mailbox

pytestmark = pytest.mark.django_db


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def approval_events() -> Any:
    return AuditEvent.objects.filter(action__in=["mailbox.approved", "mailbox.rejected"])


def assert_unchanged(*mailboxes: Mailbox) -> None:
    for mailbox in mailboxes:
        before = mailbox.approval_status
        mailbox.refresh_from_db()
        assert mailbox.approval_status == before
    assert not approval_events().exists()


@pytest.fixture
def bob_mailbox(org: Organization, bob: Any, profile: Any) -> Mailbox:
    return make_mailbox(org, bob, "bob@example.com", profile)


# One at a time


@pytest.mark.parametrize(
    ("action", "status", "event"),
    [("approve", ApprovalStatus.APPROVED, "mailbox.approved"), ("reject", ApprovalStatus.REJECTED, "mailbox.rejected")],
)
def test_approver_sets_the_status_and_it_is_audited(
    alice_mailbox: Mailbox, approver: Any, org: Organization, action: str, status: str, event: str
) -> None:
    response = client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/{action}/", REMOTE_ADDR="203.0.113.5")

    assert response.status_code == 302
    assert response.url == "/approvals/"
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.approval_status == status
    assert alice_mailbox.approval_changed_by == approver
    assert alice_mailbox.approval_changed_at is not None
    recorded = AuditEvent.objects.get(action=event)
    assert (recorded.actor, recorded.actor_name, recorded.ip) == (approver, "approver", "203.0.113.5")
    assert (recorded.object_id, recorded.organization_id) == (str(alice_mailbox.pk), org.pk)
    assert recorded.changes["approval_status"] == ["pending", status]


def test_administrator_can_approve(alice_mailbox: Mailbox, admin: Any) -> None:
    assert client_for(admin).post(f"/mailboxes/{alice_mailbox.pk}/approve/").status_code == 302
    alice_mailbox.refresh_from_db()
    assert (alice_mailbox.approval_status, alice_mailbox.approval_changed_by) == (ApprovalStatus.APPROVED, admin)


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_it_rejects_get(alice_mailbox: Mailbox, approver: Any, action: str) -> None:
    assert client_for(approver).get(f"/mailboxes/{alice_mailbox.pk}/{action}/").status_code == 405
    assert_unchanged(alice_mailbox)


@pytest.mark.parametrize("persona", ["auditor", "alice", "charlie"])
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_it_refuses_roles_that_may_not_approve(
    request: pytest.FixtureRequest, alice_mailbox: Mailbox, persona: str, action: str
) -> None:
    user = request.getfixturevalue(persona)
    assert client_for(user).post(f"/mailboxes/{alice_mailbox.pk}/{action}/").status_code == 403
    assert_unchanged(alice_mailbox)


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_it_hides_other_organizations_mailboxes(alice_mailbox: Mailbox, outsider: Any, action: str) -> None:
    assert client_for(outsider).post(f"/mailboxes/{alice_mailbox.pk}/{action}/").status_code == 404
    assert_unchanged(alice_mailbox)


def test_an_unknown_mailbox_is_404(approver: Any) -> None:
    assert client_for(approver).post("/mailboxes/00000000-0000-0000-0000-000000000000/approve/").status_code == 404


def test_it_redirects_to_next_on_the_same_host(alice_mailbox: Mailbox, approver: Any) -> None:
    target = f"/mailboxes/{alice_mailbox.pk}/"
    response = client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/approve/", {"next": target})
    assert response.status_code == 302
    assert response.url == target


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "http://testserver.evil.example/"])
def test_it_ignores_next_to_another_host(alice_mailbox: Mailbox, approver: Any, target: str) -> None:
    response = client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/reject/", {"next": target})
    assert response.status_code == 302
    assert response.url == "/approvals/"
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.approval_status == ApprovalStatus.REJECTED


def test_approving_a_mailbox_without_address_changes_nothing(
    org: Organization, bob: Any, profile: Any, approver: Any
) -> None:
    mailbox = make_mailbox(org, bob, "", profile)

    response = client_for(approver).post(f"/mailboxes/{mailbox.pk}/approve/", follow=True)

    assert response.redirect_chain == [("/approvals/", 302)]
    assert messages_of(response) == ["This mailbox has no email address to approve or reject."]
    mailbox.refresh_from_db()
    assert (mailbox.approval_status, mailbox.approval_changed_by) == (ApprovalStatus.EMPTY, None)
    assert not approval_events().exists()


# In bulk


@pytest.mark.parametrize(
    ("action", "status", "event"),
    [("approve", ApprovalStatus.APPROVED, "mailbox.approved"), ("reject", ApprovalStatus.REJECTED, "mailbox.rejected")],
)
def test_bulk_sets_the_status_of_each_selected_mailbox(
    alice_mailbox: Mailbox, bob_mailbox: Mailbox, approver: Any, action: str, status: str, event: str
) -> None:
    data = {"mailbox": [str(alice_mailbox.pk), str(bob_mailbox.pk)], "next": "/approvals/?status=pending"}

    response = client_for(approver).post(f"/approvals/{action}/", data, follow=True)

    assert response.redirect_chain == [("/approvals/?status=pending", 302)]
    assert messages_of(response) == [f"2 email addresses {status}."]
    for mailbox in (alice_mailbox, bob_mailbox):
        mailbox.refresh_from_db()
        assert (mailbox.approval_status, mailbox.approval_changed_by) == (status, approver)
    assert sorted(AuditEvent.objects.filter(action=event).values_list("object_id", flat=True)) == sorted(
        [str(alice_mailbox.pk), str(bob_mailbox.pk)]
    )
    assert set(AuditEvent.objects.filter(action=event).values_list("actor_name", flat=True)) == {"approver"}


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_bulk_rejects_get(approver: Any, alice_mailbox: Mailbox, action: str) -> None:
    response = client_for(approver).get(f"/approvals/{action}/", {"mailbox": str(alice_mailbox.pk)})
    assert response.status_code == 405
    assert_unchanged(alice_mailbox)


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_bulk_with_another_organizations_id_is_404_and_changes_nothing(
    alice_mailbox: Mailbox, bob_mailbox: Mailbox, other_mailbox: Mailbox, approver: Any, action: str
) -> None:
    data = {"mailbox": [str(alice_mailbox.pk), str(other_mailbox.pk), str(bob_mailbox.pk)]}
    assert client_for(approver).post(f"/approvals/{action}/", data).status_code == 404
    assert_unchanged(alice_mailbox, bob_mailbox, other_mailbox)


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_bulk_with_a_bad_id_is_404_and_changes_nothing(alice_mailbox: Mailbox, approver: Any, bad_id: str) -> None:
    data = {"mailbox": [str(alice_mailbox.pk), bad_id]}
    assert client_for(approver).post("/approvals/approve/", data).status_code == 404
    assert_unchanged(alice_mailbox)


def test_bulk_refuses_auditor_and_hides_from_outsider(alice_mailbox: Mailbox, auditor: Any, outsider: Any) -> None:
    data = {"mailbox": [str(alice_mailbox.pk)]}
    assert client_for(auditor).post("/approvals/approve/", data).status_code == 403
    assert client_for(outsider).post("/approvals/approve/", data).status_code == 404
    assert_unchanged(alice_mailbox)


def test_bulk_with_nothing_selected_says_so(approver: Any, alice_mailbox: Mailbox) -> None:
    response = client_for(approver).post("/approvals/approve/", follow=True)
    assert response.redirect_chain == [("/approvals/", 302)]
    assert messages_of(response) == ["Select at least one mailbox."]
    assert_unchanged(alice_mailbox)


def test_bulk_with_a_mailbox_without_address_changes_nothing(
    org: Organization, alice_mailbox: Mailbox, bob: Any, profile: Any, approver: Any
) -> None:
    """A stale page: the address was released by a remap since; the other selected mailbox stays pending too."""
    released = make_mailbox(org, bob, "", profile)
    data = {"mailbox": [str(alice_mailbox.pk), str(released.pk)]}

    response = client_for(approver).post("/approvals/approve/", data, follow=True)

    assert response.redirect_chain == [("/approvals/", 302)]
    assert messages_of(response) == [
        "(Bob): This mailbox has no email address to approve or reject. Nothing was changed."
    ]
    assert_unchanged(alice_mailbox, released)


# The approvals page


@pytest.fixture
def queue(
    org: Organization, alice_mailbox: Mailbox, bob_mailbox: Mailbox, other_mailbox: Mailbox, system: Actor
) -> dict:
    """alice pending, bob approved, a rejected queue, charlie-less empty mailbox; Globex's gina pending."""
    bob_mailbox.approve(system)
    rejected = make_mailbox(
        org,
        None,
        "sales@example.com",
        None,
        owner_type="queue",
        queue_name="Sales",
        incoming_method="client",
        outgoing_method="client",
        act_method="none",
    )
    rejected.reject(system)
    empty = make_mailbox(
        org,
        None,
        "",
        None,
        owner_type="queue",
        queue_name="No address",
        incoming_method="client",
        outgoing_method="client",
        act_method="none",
    )
    return {"rejected": rejected, "empty": empty}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, ["alice@example.com"]),
        ("pending", ["alice@example.com"]),
        ("approved", ["bob@example.com"]),
        ("rejected", ["sales@example.com"]),
        ("empty", ["alice@example.com"]),  # not a tab: falls back to pending
        ("bogus", ["alice@example.com"]),
    ],
)
def test_the_page_lists_own_organizations_mailboxes_by_status(
    approver: Any, queue: dict, status: str | None, expected: list[str]
) -> None:
    response = client_for(approver).get("/approvals/", {"status": status} if status else {})
    assert response.status_code == 200
    assert [m.address for m in response.context["page"].object_list] == expected
    assert "gina@globex.example" not in response.content.decode()


def test_the_page_has_tabs_for_pending_rejected_and_approved(approver: Any, queue: dict) -> None:
    html = client_for(approver).get("/approvals/").content.decode()
    assert 'href="?status=pending"' in html
    assert 'href="?status=approved"' in html
    assert 'href="?status=rejected"' in html
    assert 'href="?status=empty"' not in html
    assert 'class="nav-link active" href="?status=pending"' in html


def test_the_page_offers_the_actions_of_its_tab(approver: Any, queue: dict, bob_mailbox: Mailbox) -> None:
    html = client_for(approver).get("/approvals/", {"status": "approved"}).content.decode()
    assert f"/mailboxes/{bob_mailbox.pk}/reject/" in html
    assert f"/mailboxes/{bob_mailbox.pk}/approve/" not in html
    assert 'formaction="/approvals/reject/"' in html
    assert 'formaction="/approvals/approve/"' not in html


def test_the_outsider_sees_only_their_own_pending_mailboxes(outsider: Any, queue: dict) -> None:
    response = client_for(outsider).get("/approvals/")
    assert [m.address for m in response.context["page"].object_list] == ["gina@globex.example"]


def test_the_page_pages(approver: Any, queue: dict, org: Organization, profile: Any, settings: Any) -> None:
    settings.PAGE_SIZE = 1
    make_mailbox(org, None, "zeta@example.com", profile, owner_type="queue", queue_name="Zeta")
    client = client_for(approver)
    assert [m.address for m in client.get("/approvals/").context["page"].object_list] == ["alice@example.com"]
    second = client.get("/approvals/", {"status": "pending", "page": 2})
    assert [m.address for m in second.context["page"].object_list] == ["zeta@example.com"]


@pytest.mark.parametrize(("persona", "status"), [("auditor", 403), ("alice", 403), ("charlie", 403)])
def test_the_page_refuses_other_roles(request: pytest.FixtureRequest, persona: str, status: int) -> None:
    assert client_for(request.getfixturevalue(persona)).get("/approvals/").status_code == status
