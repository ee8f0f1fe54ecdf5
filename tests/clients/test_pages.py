"""The pages: "My client instances" and the approval queue (STYLE.md 10: a checklist per view)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.log import Actor
from audit.models import AuditEvent
from clients.models import ClientInstance, PromotionRequest, RequestStatus
from mailboxes.models import Organization
from tests.clients.conftest import register
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

LOGIN = "302 to /login/"
OK, MOVED, DENY, HIDE, NOGET = 200, 302, 403, 404, 405
PERSONAS = ("anonymous", "approver", "auditor", "alice", "bob", "charlie", "outsider", "admin")

# fmt: off
EXPECTED: dict[tuple[str, str], tuple[Any, ...]] = {
    #                                     anon   apprv  audit  alice  bob    charl  outsd  admin
    ("client-list", "GET"):              (LOGIN, OK,    OK,    OK,    OK,    OK,    OK,    OK),
    ("client-revoke", "GET"):            (LOGIN, HIDE,  HIDE,  OK,    HIDE,  HIDE,  HIDE,  HIDE),
    ("client-revoke", "POST"):           (LOGIN, HIDE,  HIDE,  MOVED, HIDE,  HIDE,  HIDE,  HIDE),
    ("client-requests", "GET"):          (LOGIN, OK,    DENY,  DENY,  DENY,  DENY,  OK,    OK),
    ("client-request-approve", "GET"):   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-request-approve", "POST"):  (LOGIN, MOVED, DENY,  DENY,  DENY,  DENY,  HIDE,  MOVED),
    ("client-request-reject", "GET"):    (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-request-reject", "POST"):   (LOGIN, MOVED, DENY,  DENY,  DENY,  DENY,  HIDE,  MOVED),
    ("client-requests-approve", "GET"):  (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-requests-approve", "POST"): (LOGIN, MOVED, DENY,  DENY,  DENY,  DENY,  HIDE,  MOVED),
    ("client-requests-reject", "GET"):   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-requests-reject", "POST"):  (LOGIN, MOVED, DENY,  DENY,  DENY,  DENY,  HIDE,  MOVED),
}
# fmt: on


def outcome(response: Any) -> Any:
    if response.status_code == 302 and response.url.startswith("/login/?next="):
        return LOGIN
    return response.status_code


@pytest.fixture
def pending(alice: Any, org: Organization, alice_desktop: Any) -> PromotionRequest:
    desktop, _api = alice_desktop
    return desktop.request_promotion(Actor(user=alice, name="alice"), "Laptop in repair")


def test_every_page_and_persona(request: pytest.FixtureRequest, alice_desktop: Any) -> None:
    """Each POST goes to a fresh pending request of alice's, so that every refusal is seen on one."""
    users = {name: request.getfixturevalue(name) for name in PERSONAS if name != "anonymous"}
    clients = {name: client_for(user) for name, user in users.items()} | {"anonymous": Client()}
    desktop, _api = alice_desktop
    failures = []
    for (name, method), row in EXPECTED.items():
        for persona, expected in zip(PERSONAS, row, strict=True):
            if method == "POST" or persona == PERSONAS[0]:
                PromotionRequest.objects.filter(status=RequestStatus.PENDING).update(status=RequestStatus.CANCELLED)
                spare, _token = register(users["alice"], desktop.organization, "Spare", "SPARE")
                pending = spare.request_promotion(Actor.system("tests"), "")
            args = {"client-revoke": [spare.pk], "client-request-approve": [pending.pk]}
            args["client-request-reject"] = [pending.pk]
            url = reverse(name, args=args.get(name, []))
            data = {"request": [str(pending.pk)], "reason": "Not now"}
            response = clients[persona].post(url, data) if method == "POST" else clients[persona].get(url)
            if outcome(response) != expected:
                failures.append(f"{method} {url} as {persona}: expected {expected}, got {outcome(response)}")
    assert failures == []


def test_every_url_of_the_app_is_in_the_table() -> None:
    from clients.urls import urlpatterns

    pages = {p.name for p in urlpatterns if not str(p.pattern).startswith("api/")}
    assert pages == {name for name, _method in EXPECTED}


# My client instances


def test_my_instances_lists_mine_only(alice: Any, bob: Any, org: Organization, pending: PromotionRequest) -> None:
    register(bob, org, "Bob's PC", "BOB-PC")

    html = client_for(alice).get("/clients/").content.decode()

    assert "Laptop" in html and "Desktop" in html
    assert "Bob&#x27;s PC" not in html and "Bob's PC" not in html
    assert "Laptop in repair" in html  # the request and its reason
    assert "Pending" in html
    assert 'class="table-responsive"' in html


def test_my_instances_show_a_rejection_and_its_reason(alice: Any, approver: Any, pending: PromotionRequest) -> None:
    pending.reject(Actor(user=approver, name="approver"), "Use the laptop until IT checks the desktop.")

    html = client_for(alice).get("/clients/").content.decode()

    assert "Rejected" in html
    assert "Use the laptop until IT checks the desktop." in html
    assert "approver" in html


def test_revoke_asks_first(alice: Any, alice_sync: Any) -> None:
    instance, _api = alice_sync

    html = client_for(alice).get(f"/clients/{instance.pk}/revoke/").content.decode()

    assert "Revoke “Laptop (LAPTOP-1)”" in html
    assert "synchronizing instance" in html
    instance.refresh_from_db()
    assert instance.revoked_at is None


def test_revoke_revokes_and_audits(alice: Any, alice_sync: Any) -> None:
    instance, api = alice_sync

    response = client_for(alice).post(f"/clients/{instance.pk}/revoke/")

    assert response.status_code == 302
    instance.refresh_from_db()
    assert instance.revoked_at is not None and not instance.is_sync_instance
    assert api.get("/api/v1/instances/me").status_code == 401
    event = AuditEvent.objects.get(action="client_instance.revoked")
    assert (event.actor_name, event.object_id) == ("alice", str(instance.pk))


def test_revoking_twice_says_so(alice: Any, alice_sync: Any) -> None:
    instance, _api = alice_sync
    client = client_for(alice)
    client.post(f"/clients/{instance.pk}/revoke/")

    response = client.post(f"/clients/{instance.pk}/revoke/", follow=True)

    assert "is revoked already" in response.content.decode()
    assert AuditEvent.objects.filter(action="client_instance.revoked").count() == 1


def test_revoke_hides_another_users_instance(bob: Any, alice_sync: Any) -> None:
    instance, _api = alice_sync

    assert client_for(bob).post(f"/clients/{instance.pk}/revoke/").status_code == 404
    instance.refresh_from_db()
    assert instance.revoked_at is None


# The queue


def test_the_queue_shows_user_current_and_requested_instance_when_and_why(
    approver: Any, pending: PromotionRequest
) -> None:
    html = client_for(approver).get("/clients/requests/").content.decode()

    row = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    for text in ("Alice", "Laptop", "LAPTOP-1", "Desktop", "DESKTOP-7", "Laptop in repair"):
        assert text in row
    assert 'class="table-responsive"' in html
    assert "<script>" not in html and "style=" not in html  # the Content Security Policy allows neither


def test_the_queue_hides_other_organizations(outsider: Any, pending: PromotionRequest) -> None:
    html = client_for(outsider).get("/clients/requests/").content.decode()

    assert "Laptop in repair" not in html
    assert "Nothing here." in html


def test_approve_demotes_the_old_and_promotes_the_new(
    approver: Any, alice_sync: Any, pending: PromotionRequest
) -> None:
    laptop, laptop_api = alice_sync

    response = client_for(approver).post(f"/clients/requests/{pending.pk}/approve/", {"reason": "ok"}, follow=True)

    assert "is now the synchronizing instance of alice" in response.content.decode()
    laptop.refresh_from_db()
    pending.refresh_from_db()
    pending.instance.refresh_from_db()
    assert (laptop.is_sync_instance, pending.instance.is_sync_instance) == (False, True)
    assert (pending.status, pending.decided_by, pending.decision_reason) == (RequestStatus.APPROVED, approver, "ok")
    assert pending.previous == laptop
    assert laptop_api.get("/api/v1/changes").status_code == 409  # the old one stops syncing
    events = AuditEvent.objects.filter(actor_name="approver")
    assert set(events.values_list("action", flat=True)) == {
        "client_instance.demoted",
        "client_instance.promotion_approved",
    }
    approved = events.get(action="client_instance.promotion_approved")
    assert approved.object_id == str(pending.instance_id)
    assert approved.changes == {"is_sync_instance": [False, True], "decision_reason": ["", "ok"]}


def test_approving_twice_says_it_was_approved_already(approver: Any, admin: Any, pending: PromotionRequest) -> None:
    client_for(approver).post(f"/clients/requests/{pending.pk}/approve/")

    response = client_for(admin).post(f"/clients/requests/{pending.pk}/approve/", follow=True)

    html = response.content.decode()
    assert "This request was already approved by approver" in html
    assert ClientInstance.objects.filter(is_sync_instance=True).count() == 1
    assert AuditEvent.objects.filter(action="client_instance.promotion_approved").count() == 1


def test_reject_needs_a_reason(approver: Any, pending: PromotionRequest) -> None:
    response = client_for(approver).post(f"/clients/requests/{pending.pk}/reject/", {"reason": " "}, follow=True)

    assert "Give a reason for the rejection" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == RequestStatus.PENDING


def test_reject_keeps_the_sync_instance_and_audits(approver: Any, alice_sync: Any, pending: PromotionRequest) -> None:
    laptop, _api = alice_sync

    client_for(approver).post(f"/clients/requests/{pending.pk}/reject/", {"reason": "Not now"})

    laptop.refresh_from_db()
    pending.refresh_from_db()
    assert laptop.is_sync_instance
    assert (pending.status, pending.decision_reason) == (RequestStatus.REJECTED, "Not now")
    event = AuditEvent.objects.get(action="client_instance.promotion_rejected")
    assert (event.actor_name, event.changes) == ("approver", {"decision_reason": ["", "Not now"]})


def test_the_approved_and_rejected_tabs_show_decisions(approver: Any, pending: PromotionRequest) -> None:
    pending.reject(Actor(user=approver, name="approver"), "Not now")
    client = client_for(approver)

    assert "Nothing here." in client.get("/clients/requests/").content.decode()
    html = client.get("/clients/requests/?status=rejected").content.decode()
    assert "Not now" in html and "approver" in html


def _pending_for(users: list[Any], org: Organization) -> list[PromotionRequest]:
    found = []
    for user in users:
        register(user, org, "Laptop", f"{user}-1")
        second, _ = register(user, org, "Desktop", f"{user}-2")
        found.append(second.request_promotion(Actor(user=user, name=str(user)), "new computer"))
    return found


def test_bulk_approve(approver: Any, alice: Any, bob: Any, org: Organization) -> None:
    requests = _pending_for([alice, bob], org)

    response = client_for(approver).post(
        "/clients/requests/approve/", {"request": [str(r.pk) for r in requests]}, follow=True
    )

    assert "2 requests approved." in response.content.decode()
    assert set(ClientInstance.objects.filter(is_sync_instance=True).values_list("name", flat=True)) == {"Desktop"}
    assert AuditEvent.objects.filter(action="client_instance.promotion_approved").count() == 2


def test_bulk_reject_needs_a_reason_and_rejects_all(approver: Any, alice: Any, bob: Any, org: Organization) -> None:
    requests = _pending_for([alice, bob], org)
    client = client_for(approver)
    ids = [str(r.pk) for r in requests]

    client.post("/clients/requests/reject/", {"request": ids})
    assert PromotionRequest.objects.filter(status=RequestStatus.PENDING).count() == 2

    response = client.post("/clients/requests/reject/", {"request": ids, "reason": "Ask IT first"}, follow=True)

    assert "2 requests rejected." in response.content.decode()
    assert set(PromotionRequest.objects.values_list("decision_reason", flat=True)) == {"Ask IT first"}


def test_bulk_goes_on_past_a_request_decided_meanwhile(
    approver: Any, admin: Any, alice: Any, bob: Any, org: Organization
) -> None:
    first, second = _pending_for([alice, bob], org)
    first.reject(Actor(user=admin, name="admin"), "No")

    response = client_for(approver).post(
        "/clients/requests/approve/", {"request": [str(first.pk), str(second.pk)]}, follow=True
    )

    html = response.content.decode()
    assert "1 request approved." in html
    assert "This request was already rejected by admin" in html
    second.refresh_from_db()
    assert second.status == RequestStatus.APPROVED


def test_bulk_refuses_a_request_of_another_organization(
    approver: Any, alice: Any, org: Organization, other_org: Organization, outsider: Any
) -> None:
    (mine,) = _pending_for([alice], org)
    (theirs,) = _pending_for([outsider], other_org)

    response = client_for(approver).post("/clients/requests/approve/", {"request": [str(mine.pk), str(theirs.pk)]})

    assert response.status_code == 404
    assert not PromotionRequest.objects.filter(status=RequestStatus.APPROVED).exists()


def test_bulk_with_nothing_ticked_says_so(approver: Any) -> None:
    response = client_for(approver).post("/clients/requests/approve/", follow=True)

    assert "Select at least one request." in response.content.decode()


def test_the_queue_pages_go_back_to_where_they_were(approver: Any, pending: PromotionRequest) -> None:
    response = client_for(approver).post(
        f"/clients/requests/{pending.pk}/approve/", {"next": "/clients/requests/?status=pending&page=1"}
    )
    assert response.url == "/clients/requests/?status=pending&page=1"

    response = client_for(approver).post(f"/clients/requests/{pending.pk}/approve/", {"next": "https://evil.example/"})
    assert response.url == "/clients/requests/"
