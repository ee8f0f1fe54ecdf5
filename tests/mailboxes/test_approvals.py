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
    data = {"confirmed": "1"} if action == "reject" else {}
    response = client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/{action}/", data, REMOTE_ADDR="203.0.113.5")

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
    assert "reason" not in recorded.changes


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
    response = client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/reject/", {"next": target, "confirmed": "1"})
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
    if action == "reject":
        data["confirmed"] = "1"

    response = client_for(approver).post(f"/approvals/{action}/", data, follow=True)

    assert response.redirect_chain == [("/approvals/?status=pending", 302)]
    verb = "Approved" if action == "approve" else "Rejected"
    assert messages_of(response) == [f"{verb} 2 email addresses: alice@example.com, bob@example.com."]
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


def test_tabs_show_their_counts(approver: Any, queue: dict) -> None:
    response = client_for(approver).get("/approvals/")
    assert response.context["tabs"] == [
        ("pending", "Pending approval", 1),
        ("rejected", "Rejected", 1),
        ("approved", "Approved", 1),
    ]
    html = response.content.decode()
    assert 'data-count="pending">1<' in html
    assert 'aria-current="page"' in html


def test_tab_counts_leave_out_other_organizations(outsider: Any, queue: dict) -> None:
    assert client_for(outsider).get("/approvals/").context["tabs"] == [
        ("pending", "Pending approval", 1),
        ("rejected", "Rejected", 0),
        ("approved", "Approved", 0),
    ]


@pytest.mark.parametrize(
    ("status", "text"),
    [
        ("pending", "No email addresses are waiting for approval."),
        ("rejected", "No email addresses are rejected."),
        ("approved", "No email addresses are approved yet."),
    ],
)
def test_an_empty_tab_says_what_it_means(approver: Any, status: str, text: str) -> None:
    html = client_for(approver).get("/approvals/", {"status": status}).content.decode()
    assert text in html
    assert "Nothing here." not in html


def test_addresses_link_to_the_mailbox_page_for_administrators(
    admin: Any, approver: Any, alice_mailbox: Mailbox
) -> None:
    link = f'<a href="/mailboxes/{alice_mailbox.pk}/">alice@example.com</a>'
    assert link in client_for(admin).get("/approvals/").content.decode()
    # An approver may not open the mailbox page: no link that would end in a 403.
    assert link not in client_for(approver).get("/approvals/").content.decode()


def test_the_table_scrolls_on_its_own(approver: Any, alice_mailbox: Mailbox) -> None:
    html = client_for(approver).get("/approvals/").content.decode()
    assert '<div class="table-responsive">\n  <table class="table table-striped">' in html


def test_bulk_message_names_a_few_addresses_and_counts_the_rest(org: Organization, profile: Any, approver: Any) -> None:
    mailboxes = [
        make_mailbox(org, None, f"q{i}@example.com", profile, owner_type="queue", queue_name=f"Q{i}") for i in range(7)
    ]
    data = {"mailbox": [str(m.pk) for m in mailboxes]}

    response = client_for(approver).post("/approvals/approve/", data, follow=True)

    assert messages_of(response) == [
        "Approved 7 email addresses: q0@example.com, q1@example.com, q2@example.com, q3@example.com, "
        "q4@example.com and 2 more."
    ]


# Reject asks first, and records the reason


def test_reject_without_confirmation_asks_first_and_changes_nothing(alice_mailbox: Mailbox, approver: Any) -> None:
    url = f"/mailboxes/{alice_mailbox.pk}/reject/"
    response = client_for(approver).post(url, {"next": "/approvals/?status=pending"})

    assert response.status_code == 302
    assert response.url == f"/mailboxes/{alice_mailbox.pk}/reject/confirm/?next=%2Fapprovals%2F%3Fstatus%3Dpending"
    assert_unchanged(alice_mailbox)


def test_the_reject_confirmation_page_asks_for_a_reason(alice_mailbox: Mailbox, approver: Any) -> None:
    url = f"/mailboxes/{alice_mailbox.pk}/reject/confirm/"
    response = client_for(approver).get(url, {"next": "/approvals/?status=pending"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Reject 1 email address?" in html
    assert "alice@example.com" in html
    assert f'<form method="post" action="/mailboxes/{alice_mailbox.pk}/reject/"' in html
    assert '<input type="hidden" name="confirmed" value="1">' in html
    assert '<textarea name="reason"' in html
    assert '<a class="btn btn-link" href="/approvals/?status=pending">Cancel</a>' in html
    assert_unchanged(alice_mailbox)


def test_the_reject_confirmation_page_cancels_to_approvals_not_to_another_host(
    alice_mailbox: Mailbox, approver: Any
) -> None:
    url = f"/mailboxes/{alice_mailbox.pk}/reject/confirm/"
    html = client_for(approver).get(url, {"next": "https://evil.example/"}).content.decode()
    assert "evil.example" not in html.split("<main", 1)[1].split("</main>", 1)[0]
    assert '<a class="btn btn-link" href="/approvals/">Cancel</a>' in html


def test_the_reject_confirmation_page_is_hidden_and_refused_like_the_action(
    alice_mailbox: Mailbox, auditor: Any, outsider: Any
) -> None:
    url = f"/mailboxes/{alice_mailbox.pk}/reject/confirm/"
    assert client_for(auditor).get(url).status_code == 403
    assert client_for(outsider).get(url).status_code == 404


def test_confirmed_reject_records_the_reason_in_the_audit_event(alice_mailbox: Mailbox, approver: Any) -> None:
    data = {"confirmed": "1", "reason": "  Not one of our domains.  ", "next": "/approvals/"}

    response = client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/reject/", data, follow=True)

    assert messages_of(response) == ["Email address alice@example.com rejected."]
    alice_mailbox.refresh_from_db()
    assert (alice_mailbox.approval_status, alice_mailbox.approval_changed_by) == (ApprovalStatus.REJECTED, approver)
    event = AuditEvent.objects.get(action="mailbox.rejected")
    assert event.changes == {"approval_status": ["pending", "rejected"], "reason": ["", "Not one of our domains."]}
    assert (event.actor, event.object_id) == (approver, str(alice_mailbox.pk))


def test_a_too_long_reason_shows_the_page_again_and_changes_nothing(alice_mailbox: Mailbox, approver: Any) -> None:
    data = {"confirmed": "1", "reason": "x" * 1001}
    response = client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/reject/", data)
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert_unchanged(alice_mailbox)


def test_bulk_reject_without_confirmation_asks_first_and_changes_nothing(
    alice_mailbox: Mailbox, bob_mailbox: Mailbox, approver: Any
) -> None:
    data = {"mailbox": [str(alice_mailbox.pk), str(bob_mailbox.pk)], "next": "/approvals/"}

    response = client_for(approver).post("/approvals/reject/", data)

    assert response.status_code == 302
    path, query = response.url.split("?")
    assert path == "/approvals/reject/confirm/"
    assert sorted(query.split("&")) == sorted(
        [f"mailbox={alice_mailbox.pk}", f"mailbox={bob_mailbox.pk}", "next=%2Fapprovals%2F"]
    )
    assert_unchanged(alice_mailbox, bob_mailbox)


def test_the_bulk_reject_confirmation_lists_the_addresses(
    alice_mailbox: Mailbox, bob_mailbox: Mailbox, approver: Any
) -> None:
    params = {"mailbox": [str(alice_mailbox.pk), str(bob_mailbox.pk)], "next": "/approvals/"}
    response = client_for(approver).get("/approvals/reject/confirm/", params)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Reject 2 email addresses?" in html
    assert "alice@example.com" in html and "bob@example.com" in html
    assert '<form method="post" action="/approvals/reject/"' in html
    assert f'<input type="hidden" name="mailbox" value="{alice_mailbox.pk}">' in html
    assert '<a class="btn btn-link" href="/approvals/">Cancel</a>' in html
    assert_unchanged(alice_mailbox, bob_mailbox)


def test_the_bulk_reject_confirmation_hides_other_organizations(
    alice_mailbox: Mailbox, other_mailbox: Mailbox, approver: Any
) -> None:
    params = {"mailbox": [str(alice_mailbox.pk), str(other_mailbox.pk)]}
    assert client_for(approver).get("/approvals/reject/confirm/", params).status_code == 404


def test_the_bulk_reject_confirmation_without_selection_says_so(approver: Any) -> None:
    response = client_for(approver).get("/approvals/reject/confirm/", follow=True)
    assert response.redirect_chain == [("/approvals/", 302)]
    assert messages_of(response) == ["Select at least one mailbox."]


def test_confirmed_bulk_reject_records_the_reason_for_each(
    alice_mailbox: Mailbox, bob_mailbox: Mailbox, approver: Any
) -> None:
    data = {"mailbox": [str(alice_mailbox.pk), str(bob_mailbox.pk)], "confirmed": "1", "reason": "Test accounts"}

    client_for(approver).post("/approvals/reject/", data)

    events = AuditEvent.objects.filter(action="mailbox.rejected")
    assert sorted(events.values_list("object_id", flat=True)) == sorted([str(alice_mailbox.pk), str(bob_mailbox.pk)])
    assert {e.changes["reason"][1] for e in events} == {"Test accounts"}


# Select all N matching: more than the page


@pytest.fixture
def sixty_pending(org: Organization, profile: Any, settings: Any) -> list[Mailbox]:
    settings.PAGE_SIZE = 50
    return [
        make_mailbox(org, None, f"queue{i:02}@example.com", profile, owner_type="queue", queue_name=f"Queue {i:02}")
        for i in range(60)
    ]


def test_the_page_offers_to_select_all_matching(approver: Any, sixty_pending: list[Mailbox]) -> None:
    response = client_for(approver).get("/approvals/")
    assert len(response.context["page"].object_list) == 50
    html = response.content.decode()
    assert 'name="all_matching" value="1"' in html
    assert "Select all 60 matching, on every page" in html
    assert '<input type="hidden" name="status" value="pending">' in html
    # portal.js ticks it with the page's select-all box (tests/mailboxes/test_select_all_browser.py).
    assert 'id="all-matching"' in html
    assert 'data-select-all="#bulk input[name=mailbox]" data-all-matching="#all-matching"' in html


def test_a_page_showing_everything_offers_no_select_all_matching(approver: Any, alice_mailbox: Mailbox) -> None:
    assert 'name="all_matching"' not in client_for(approver).get("/approvals/").content.decode()


def test_approve_all_matching_applies_beyond_the_page(
    approver: Any, sixty_pending: list[Mailbox], other_mailbox: Mailbox
) -> None:
    data = {"all_matching": "1", "status": "pending", "mailbox": [str(sixty_pending[0].pk)]}

    response = client_for(approver).post("/approvals/approve/", data, follow=True)

    assert Mailbox.objects.filter(approval_status=ApprovalStatus.APPROVED).count() == 60
    assert approval_events().count() == 60
    [message] = messages_of(response)
    assert message.startswith("Approved 60 email addresses: queue00@example.com, queue01@example.com,")
    assert message.endswith("and 55 more.")
    other_mailbox.refresh_from_db()
    assert other_mailbox.approval_status == ApprovalStatus.PENDING


def test_reject_all_matching_confirms_the_count_then_applies_beyond_the_page(
    approver: Any, sixty_pending: list[Mailbox]
) -> None:
    client = client_for(approver)
    first = client.post("/approvals/reject/", {"all_matching": "1", "status": "pending"})
    assert first.status_code == 302
    assert not approval_events().exists()

    page = client.get(first.url)
    html = page.content.decode()
    assert "Reject 60 email addresses?" in html
    assert "This applies to all 60 mailboxes matching the tab, on every page." in html
    assert '<input type="hidden" name="all_matching" value="1">' in html

    client.post("/approvals/reject/", {"all_matching": "1", "status": "pending", "confirmed": "1", "reason": "Spam"})
    assert Mailbox.objects.filter(approval_status=ApprovalStatus.REJECTED).count() == 60
    assert approval_events().filter(action="mailbox.rejected").count() == 60


def test_all_matching_of_no_tab_is_404(approver: Any, alice_mailbox: Mailbox) -> None:
    response = client_for(approver).post("/approvals/approve/", {"all_matching": "1", "status": "empty"})
    assert response.status_code == 404
    assert_unchanged(alice_mailbox)
