"""Client instances through the API: register, who am I, ask to become the sync instance."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from audit.log import Actor
from audit.models import AuditEvent
from clients.models import ClientInstance, HeldRecord, PromotionRequest, RequestStatus, hash_token
from mailboxes.models import Organization
from tests.clients.conftest import Api, basic, register, set_rate

pytestmark = pytest.mark.django_db

BODY = {"name": "Outlook", "machine": "LAPTOP-1", "client_version": "9.1.0"}


def post_register(headers: dict[str, str], body: Any = BODY) -> Any:
    return Client().post("/api/v1/instances", json.dumps(body), content_type="application/json", **headers)


# Registering


def test_the_first_instance_syncs_at_once_and_gets_a_token(alice: Any) -> None:
    response = post_register(basic("alice"))

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "token", "is_sync_instance"}
    assert body["is_sync_instance"] is True
    instance = ClientInstance.objects.get(pk=body["id"])
    assert (instance.user, instance.name, instance.machine, instance.client_version) == (
        alice,
        "Outlook",
        "LAPTOP-1",
        "9.1.0",
    )
    assert Api(body["token"]).get("/api/v1/instances/me").status_code == 200


def test_later_instances_do_not_sync(alice: Any) -> None:
    post_register(basic("alice"))
    second = post_register(basic("alice"), {**BODY, "machine": "DESKTOP-2"}).json()

    assert second["is_sync_instance"] is False
    assert ClientInstance.objects.filter(user=alice, is_sync_instance=True).count() == 1


def test_a_user_whose_instances_are_all_revoked_registers_a_plain_one(alice: Any, org: Organization) -> None:
    instance, _token = register(alice, org)
    instance.revoke(Actor.system("tests"))

    assert post_register(basic("alice")).json()["is_sync_instance"] is False


def test_the_token_is_stored_hashed_and_never_audited(alice: Any) -> None:
    token = post_register(basic("alice")).json()["token"]

    instance = ClientInstance.objects.get()
    assert instance.token_hash == hash_token(token) != token
    assert len(token) >= 43  # secrets.token_urlsafe(32)
    dumped = json.dumps(list(AuditEvent.objects.values("changes", "object_repr")))
    assert token not in dumped
    assert instance.token_hash not in dumped


def test_registering_is_audited(alice: Any) -> None:
    post_register(basic("alice"))

    event = AuditEvent.objects.get(action="client_instance.registered")
    assert event.actor_name == "alice"
    assert event.changes["is_sync_instance"] == [None, True]
    assert event.organization_name == "Acme"


def test_a_wrong_password_is_a_401(alice: Any) -> None:
    response = post_register(basic("alice", "wrong"))

    assert response.status_code == 401
    assert response.json() == {"error": "Wrong user name or password."}
    assert response["WWW-Authenticate"].startswith("Basic")
    assert not ClientInstance.objects.exists()


def test_the_sign_in_throttle_applies_and_answers_in_json(alice: Any, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        post_register(basic("alice", "wrong"))

    response = post_register(basic("alice"))  # the right password, but locked out

    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert "sign-in is blocked" in response.json()["error"]
    assert not ClientInstance.objects.exists()


def test_registering_needs_basic_credentials(alice: Any) -> None:
    assert post_register({}).status_code == 401
    assert post_register({"HTTP_AUTHORIZATION": "Basic !!!"}).status_code == 401


def test_registering_refuses_missing_fields(alice: Any) -> None:
    response = post_register(basic("alice"), {"name": "Outlook"})

    assert response.status_code == 400
    assert "machine" in response.json()["error"]


def test_someone_in_no_organization_cannot_register(charlie: Any) -> None:
    response = post_register(basic("charlie"))

    assert response.status_code == 403
    assert response.json() == {"error": "You are not a member of any organization."}


def test_registrations_per_user_are_rate_limited(alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    set_rate(monkeypatch, "client_register", "2/hour")

    codes = [post_register(basic("alice")).status_code for _ in range(3)]

    assert codes == [201, 201, 429]
    assert ClientInstance.objects.count() == 2


# Tokens


def test_an_unknown_token_is_a_401() -> None:
    response = Api("not-a-token").get("/api/v1/instances/me")

    assert response.status_code == 401
    assert response.json() == {"error": "Unknown or revoked token."}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_no_token_is_a_401() -> None:
    assert Api().get("/api/v1/instances/me").status_code == 401


def test_a_revoked_token_is_a_401(alice_sync: Any) -> None:
    instance, api = alice_sync
    instance.revoke(Actor.system("tests"))

    assert api.get("/api/v1/instances/me").status_code == 401
    assert api.get("/api/v1/changes").status_code == 401


def test_a_deactivated_user_token_is_a_401(alice: Any, alice_sync: Any) -> None:
    _instance, api = alice_sync
    alice.is_active = False
    alice.save()

    assert api.get("/api/v1/instances/me").status_code == 401


def test_a_malformed_authorization_header_is_a_401() -> None:
    client = Client()
    assert client.get("/api/v1/instances/me", HTTP_AUTHORIZATION="Bearer a b").status_code == 401
    assert client.get("/api/v1/instances/me", HTTP_AUTHORIZATION="Bearer t\u00e9st").status_code == 401


def test_requests_per_token_are_rate_limited(
    alice_sync: Any, alice_desktop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_rate(monkeypatch, "client_token", "3/min")
    _instance, api = alice_sync
    _other, other_api = alice_desktop

    codes = [api.get("/api/v1/instances/me").status_code for _ in range(4)]
    response = api.get("/api/v1/instances/me")

    assert codes == [200, 200, 200, 429]
    assert response.json()["error"].startswith("Too many requests")
    assert int(response["Retry-After"]) > 0
    assert other_api.get("/api/v1/instances/me").status_code == 200  # per token


def test_last_seen_is_written_at_most_once_a_minute(alice_sync: Any) -> None:
    instance, api = alice_sync
    api.get("/api/v1/instances/me")
    instance.refresh_from_db()
    seen = instance.last_seen_at
    assert seen is not None

    api.get("/api/v1/instances/me")
    instance.refresh_from_db()
    assert instance.last_seen_at == seen


# Me


def test_me_says_which_instance_and_its_pending_request(alice_desktop: Any) -> None:
    instance, api = alice_desktop
    assert api.get("/api/v1/instances/me").json() == {
        "id": str(instance.pk),
        "name": "Desktop",
        "is_sync_instance": False,
        "pending_request": None,
    }

    request_id = api.post("/api/v1/instances/me/promote", {"reason": "new laptop"}).json()["request"]["id"]

    assert api.get("/api/v1/instances/me").json()["pending_request"] == {"id": request_id, "status": "pending"}


# Promote


def test_promote_files_a_pending_request(alice_desktop: Any) -> None:
    instance, api = alice_desktop

    response = api.post("/api/v1/instances/me/promote", {"reason": "My laptop is in repair"})

    assert response.status_code == 202
    body = response.json()
    assert body["request"]["status"] == "pending"
    request = PromotionRequest.objects.get(pk=body["request"]["id"])
    assert (request.instance, request.reason, request.previous.name) == (instance, "My laptop is in repair", "Laptop")
    instance.refresh_from_db()
    assert not instance.is_sync_instance
    event = AuditEvent.objects.get(action="client_instance.promotion_requested")
    assert event.object_id == str(instance.pk)
    assert event.changes == {"reason": ["", "My laptop is in repair"]}


def test_a_second_promotion_while_one_is_pending_is_a_409(alice: Any, org: Organization, alice_desktop: Any) -> None:
    _instance, api = alice_desktop
    api.post("/api/v1/instances/me/promote", {"reason": "first"})

    again = api.post("/api/v1/instances/me/promote", {"reason": "again"})
    _third, token = register(alice, org, "Tablet", "TAB-1")
    other = Api(token).post("/api/v1/instances/me/promote", {})

    assert again.status_code == 409
    assert again.json() == {"error": "A request to change the synchronizing instance is already pending."}
    assert other.status_code == 409
    assert PromotionRequest.objects.count() == 1


def test_the_sync_instance_cannot_ask_to_become_it(alice_sync: Any) -> None:
    _instance, api = alice_sync

    response = api.post("/api/v1/instances/me/promote", {"reason": "x"})

    assert response.status_code == 409
    assert "already the synchronizing one" in response.json()["error"]


def test_the_organization_auto_approve_switch_skips_the_queue(
    org: Organization, alice_sync: Any, alice_desktop: Any
) -> None:
    org.auto_approve_instance_changes = True
    org.save()
    laptop, _ = alice_sync
    desktop, api = alice_desktop

    response = api.post("/api/v1/instances/me/promote", {"reason": "switching"})

    assert response.status_code == 202
    assert response.json()["request"]["status"] == "approved"
    desktop.refresh_from_db()
    laptop.refresh_from_db()
    assert (desktop.is_sync_instance, laptop.is_sync_instance) == (True, False)
    actions = list(AuditEvent.objects.order_by("time", "id").values_list("action", "actor_name"))
    assert ("client_instance.promotion_requested", "alice") in actions
    assert ("client_instance.demoted", "auto-approval") in actions
    assert ("client_instance.promotion_auto_approved", "auto-approval") in actions
    assert api.get("/api/v1/instances/me").json()["is_sync_instance"] is True


def test_promote_takes_json_only(alice_desktop: Any) -> None:
    _instance, api = alice_desktop

    response = api.post("/api/v1/instances/me/promote", raw="{not json")

    assert response.status_code == 400
    assert response.json()["error"].startswith("Malformed JSON")


# The model's rules


def test_the_database_allows_one_sync_instance_per_user(alice_sync: Any, alice_desktop: Any) -> None:
    desktop, _ = alice_desktop
    desktop.is_sync_instance = True

    with pytest.raises(IntegrityError), transaction.atomic():
        desktop.save(update_fields=["is_sync_instance"])


def test_revoking_withdraws_the_pending_request_and_forgets_what_it_held(alice: Any, alice_desktop: Any) -> None:
    desktop, api = alice_desktop
    api.post("/api/v1/instances/me/promote", {"reason": "x"})
    HeldRecord.objects.create(instance=desktop, feed="changes", record_type="contact", record_id=desktop.pk)

    assert desktop.revoke(Actor(user=alice, name="alice")) is True
    assert desktop.revoke(Actor(user=alice, name="alice")) is False

    assert PromotionRequest.objects.get().status == RequestStatus.CANCELLED
    assert not HeldRecord.objects.exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"client_instance.revoked", "client_instance.promotion_cancelled"} <= actions
    assert AuditEvent.objects.filter(action="client_instance.revoked").count() == 1


def test_tokens_are_never_logged(alice: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    token = post_register(basic("alice")).json()["token"]
    Api(token).get("/api/v1/changes")
    Api(token + "x").get("/api/v1/changes")

    assert caplog.records  # the 401 above is logged, without its token
    assert token not in caplog.text
