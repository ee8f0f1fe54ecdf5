"""Pushing: POST /api/v1/changes (clients/push.py), offline replays included."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from audit.log import Actor
from clients.models import ClientConflict, ClientOperation, ConflictStatus
from crm.models import Appointment, Contact, Task
from mailboxes.models import Organization
from tests.clients.conftest import Api

pytestmark = pytest.mark.django_db

KEYS = {"op_id", "status", "id", "version", "conflict_id", "error"}


def push(api: Api, *operations: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.post("/api/v1/changes", {"operations": list(operations)})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert all(set(r) == KEYS for r in results)
    return results


def mine(org: Organization, owner: Any, **fields: Any) -> Contact:
    return Contact.objects.create(organization=org, owner=owner, **{"last_name": "Doe", **fields})


def update(op_id: str, record: Any, base_version: int, **fields: Any) -> dict[str, Any]:
    return {
        "op_id": op_id,
        "op": "update",
        "type": "contact",
        "id": str(record.pk),
        "base_version": base_version,
        "fields": fields,
    }


# Applied


def test_create_update_delete_are_applied(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    given = str(uuid.uuid4())

    created, task_created, appointment_created = push(
        api,
        {"op_id": "1", "op": "create", "type": "contact", "fields": {"last_name": "Ng", "email": "ng@example.com"}},
        {"op_id": "2", "op": "create", "type": "task", "id": given, "fields": {"subject": "Call", "due": "2026-06-01"}},
        {
            "op_id": "3",
            "op": "create",
            "type": "appointment",
            "fields": {
                "subject": "Demo",
                "start": "2026-06-01T09:00:00Z",
                "end": "2026-06-01T12:00:00+02:00",
                "attendees": [" Ann@Example.com "],
            },
        },
    )

    assert created["status"] == "applied" and created["version"] == 1
    contact = Contact.objects.get(pk=created["id"])
    assert (contact.owner, contact.organization, contact.email) == (alice, org, "ng@example.com")
    assert task_created["id"] == given
    assert str(Task.objects.get(pk=given).due) == "2026-06-01"
    appointment = Appointment.objects.get(pk=appointment_created["id"])
    assert appointment.attendees == ["ann@example.com"]

    updated, deleted = push(
        api,
        update("4", contact, 1, job_title="CEO"),
        {"op_id": "5", "op": "delete", "type": "task", "id": given, "base_version": 1},
    )

    assert (updated["status"], updated["version"]) == ("applied", 2)
    contact.refresh_from_db()
    assert (contact.job_title, contact.email) == ("CEO", "ng@example.com")
    assert (deleted["status"], deleted["version"]) == ("applied", 2)
    assert Task.all_objects.get(pk=given).is_deleted


def test_an_update_that_changes_nothing_keeps_the_version(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice, job_title="CEO")

    (result,) = push(api, update("1", record, 1, job_title="CEO"))

    assert (result["status"], result["version"]) == ("applied", 1)


def test_deleting_a_deleted_record_is_applied(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice)
    record.delete()

    (result,) = push(api, {"op_id": "1", "op": "delete", "type": "contact", "id": str(record.pk), "base_version": 1})

    assert (result["status"], result["version"]) == ("applied", 2)
    assert not ClientConflict.objects.exists()


# Conflicts


def test_a_stale_version_is_a_conflict_and_nothing_is_lost(alice: Any, org: Organization, alice_sync: Any) -> None:
    instance, api = alice_sync
    record = mine(org, alice, job_title="Portal title")
    record.job_title = "Portal title 2"
    record.save()  # version 2: the client's change below is based on version 1

    (result,) = push(api, update("1", record, 1, job_title="Client title"))

    assert result["status"] == "conflict"
    assert (result["id"], result["version"]) == (str(record.pk), 2)
    record.refresh_from_db()
    assert (record.job_title, record.version) == ("Portal title 2", 2)  # nothing overwritten
    conflict = ClientConflict.objects.get(pk=result["conflict_id"])
    assert (conflict.instance, conflict.user, conflict.status) == (instance, alice, ConflictStatus.OPEN)
    assert conflict.base == {"version": 1}
    assert conflict.theirs["version"] == 2 and conflict.theirs["fields"]["job_title"] == "Portal title 2"
    assert conflict.ours == {"fields": {"job_title": "Client title"}}


def test_a_stale_delete_is_a_conflict(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice)
    record.save()

    (result,) = push(api, {"op_id": "1", "op": "delete", "type": "contact", "id": str(record.pk), "base_version": 1})

    assert result["status"] == "conflict"
    assert not Contact.all_objects.get(pk=record.pk).is_deleted
    assert ClientConflict.objects.get().ours == {"deleted": True}


def test_an_update_of_a_record_deleted_meanwhile_is_a_conflict(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice)
    record.delete()

    (result,) = push(api, update("1", record, 2, job_title="x"))

    assert result["status"] == "conflict"
    assert ClientConflict.objects.get().theirs["deleted"] is True


def test_conflicts_show_on_my_instances_page(alice: Any, org: Organization, alice_sync: Any) -> None:
    from tests.conftest import client_for

    _instance, api = alice_sync
    record = mine(org, alice)
    record.save()
    push(api, update("1", record, 1, job_title="x"))

    html = client_for(alice).get("/clients/").content.decode()

    assert "Open conflicts from your clients" in html
    assert str(record.pk) in html


# Errors per operation


def test_unknown_fields_are_an_error_for_that_operation_only(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice)

    bad, good = push(api, update("1", record, 1, job_title="x", shoe_size="44"), update("2", record, 1, job_title="y"))

    assert bad["status"] == "error"
    assert "Unknown fields for a contact: shoe_size" in bad["error"]
    assert good["status"] == "applied"
    record.refresh_from_db()
    assert record.job_title == "y"


def test_another_users_record_is_not_found(alice: Any, bob: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    bobs = mine(org, bob, job_title="Bob's")

    (result,) = push(api, update("1", bobs, 1, job_title="mine now"))

    assert (result["status"], result["error"]) == ("error", "Not found.")
    bobs.refresh_from_db()
    assert bobs.job_title == "Bob's"


def test_another_organizations_record_is_not_found(
    admin: Any, org: Organization, other_mailbox: Any, alice_sync: Any
) -> None:
    from tests.clients.conftest import register

    instance, token = register(admin, org)
    theirs = mine(other_mailbox.organization, other_mailbox.user)

    (result,) = push(Api(token), update("1", theirs, 1, job_title="x"))

    assert (result["status"], result["error"]) == ("error", "Not found.")


def test_an_administrator_may_change_any_record_of_the_organization(admin: Any, alice: Any, org: Organization) -> None:
    from tests.clients.conftest import register

    _instance, token = register(admin, org)
    alices = mine(org, alice)

    (result,) = push(Api(token), update("1", alices, 1, job_title="set by admin"))

    assert result["status"] == "applied"


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ("not an object", "An operation must be a JSON object."),
        ({"op": "create"}, "op_id must be text"),
        ({"op_id": "x", "op": "upsert", "type": "contact"}, "op must be create, update or delete."),
        ({"op_id": "x", "op": "create", "type": "lead"}, "type must be contact, appointment or task."),
        ({"op_id": "x", "op": "create", "type": "contact", "fields": {}, "extra": 1}, "Unknown keys: extra."),
        ({"op_id": "x", "op": "create", "type": "contact", "fields": {}}, "last_name: This field cannot be blank."),
        ({"op_id": "x", "op": "create", "type": "contact", "fields": []}, "fields must be a JSON object."),
        ({"op_id": "x", "op": "create", "type": "contact", "id": "nope", "fields": {}}, "id must be a record id"),
        ({"op_id": "x", "op": "update", "type": "contact", "id": str(uuid.uuid4()), "fields": {}}, "base_version"),
        (
            {"op_id": "x", "op": "create", "type": "contact", "fields": {"last_name": {"a": 1}}},
            'last_name: {"a": 1} is not a value for this field.',
        ),
        (
            {"op_id": "x", "op": "create", "type": "contact", "fields": {"last_name": "X", "email": "nope"}},
            "email: Enter a valid email address.",
        ),
        (
            {"op_id": "x", "op": "create", "type": "task", "fields": {"subject": "X", "priority": "urgent"}},
            "priority: Value 'urgent' is not a valid choice.",
        ),
        (
            {
                "op_id": "x",
                "op": "create",
                "type": "appointment",
                "fields": {"subject": "X", "start": "2026-06-01T09:00:00", "end": "2026-06-01T10:00:00Z"},
            },
            "start: the time needs a time zone",
        ),
        (
            {
                "op_id": "x",
                "op": "create",
                "type": "appointment",
                "fields": {"subject": "X", "start": "2026-06-01T10:00:00Z", "end": "2026-06-01T09:00:00Z"},
            },
            "end: The end must not be before the start.",
        ),
        (
            {"op_id": "x", "op": "create", "type": "appointment", "fields": {"subject": "X", "attendees": "a@b.c"}},
            "attendees: a list of email addresses is expected.",
        ),
        (
            {
                "op_id": "x",
                "op": "delete",
                "type": "contact",
                "id": str(uuid.uuid4()),
                "base_version": 1,
                "fields": {"a": 1},
            },
            "A delete takes no fields.",
        ),
        ({"op_id": "x", "op": "delete", "type": "contact", "id": str(uuid.uuid4()), "base_version": 1}, "Not found."),
    ],
)
def test_bad_operations_are_errors_in_their_result(alice_sync: Any, operation: Any, message: str) -> None:
    _instance, api = alice_sync

    (result,) = push(api, operation)

    assert result["status"] == "error"
    assert message in result["error"]
    assert not Contact.all_objects.exists() and not Task.all_objects.exists() and not Appointment.all_objects.exists()


def test_a_create_with_an_id_in_use_is_an_error(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice)

    (result,) = push(
        api, {"op_id": "1", "op": "create", "type": "contact", "id": str(record.pk), "fields": {"last_name": "X"}}
    )

    assert result["error"] == "A record with this id exists already."


# Replays


def test_a_replayed_batch_applies_nothing_twice(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice)
    stale = mine(org, alice)
    stale.save()
    batch = [
        {"op_id": "offline-1", "op": "create", "type": "contact", "fields": {"last_name": "New"}},
        update("offline-2", record, 1, job_title="CEO"),
        update("offline-3", stale, 1, job_title="x"),
        {"op_id": "offline-4", "op": "create", "type": "contact", "fields": {"shoe": 1}},
    ]

    first = push(api, *batch)
    again = push(api, *batch)

    assert again == first
    assert [r["status"] for r in first] == ["applied", "applied", "conflict", "error"]
    assert Contact.objects.filter(last_name="New").count() == 1
    record.refresh_from_db()
    assert record.version == 2
    assert ClientConflict.objects.count() == 1
    assert ClientOperation.objects.count() == 4


def test_an_op_id_used_again_for_another_operation_is_an_error(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    record = mine(org, alice)
    push(api, update("1", record, 1, job_title="CEO"))

    (result,) = push(api, update("1", record, 2, job_title="CFO"))

    assert result["error"] == "This op_id was used for another operation."
    record.refresh_from_db()
    assert record.job_title == "CEO"


def test_op_ids_are_per_instance(alice: Any, org: Organization, alice_sync: Any, alice_desktop: Any) -> None:
    laptop, api = alice_sync
    desktop, desktop_api = alice_desktop
    push(api, {"op_id": "1", "op": "create", "type": "contact", "fields": {"last_name": "A"}})
    request = desktop.request_promotion(Actor.system("tests"), "")
    request.approve(Actor.system("tests"))

    push(desktop_api, {"op_id": "1", "op": "create", "type": "contact", "fields": {"last_name": "A"}})

    assert Contact.objects.filter(last_name="A").count() == 2


# Whole requests


def test_only_the_sync_instance_may_push(alice_desktop: Any) -> None:
    _instance, api = alice_desktop

    response = api.post("/api/v1/changes", {"operations": []})

    assert response.status_code == 409
    assert "not the synchronizing one" in response.json()["error"]


def test_malformed_json_is_a_400(alice_sync: Any) -> None:
    _instance, api = alice_sync

    response = api.post("/api/v1/changes", raw='{"operations": [')

    assert response.status_code == 400
    assert response.json()["error"].startswith("Malformed JSON")


@pytest.mark.parametrize("body", [[], {"operations": {}}, {"ops": []}, "text"])
def test_a_body_without_a_list_of_operations_is_a_400(alice_sync: Any, body: Any) -> None:
    _instance, api = alice_sync

    response = api.post("/api/v1/changes", body)

    assert response.status_code == 400
    assert "operations" in response.json()["error"]


def test_a_batch_over_the_limit_is_a_413(alice_sync: Any, settings: Any) -> None:
    _instance, api = alice_sync
    operations = [
        {"op_id": str(n), "op": "delete", "type": "task", "id": str(uuid.uuid4()), "base_version": 1}
        for n in range(501)
    ]

    response = api.post("/api/v1/changes", {"operations": operations})

    assert response.status_code == 413
    assert response.json() == {"error": "Too many operations: a batch holds at most 500 operations."}
    assert not ClientOperation.objects.exists()


def test_a_body_over_the_size_limit_is_a_413(alice_sync: Any, settings: Any) -> None:
    settings.CLIENT_API_MAX_BODY_BYTES = 1000
    _instance, api = alice_sync

    response = api.post("/api/v1/changes", raw=json.dumps({"operations": [], "padding": "x" * 2000}))

    assert response.status_code == 413
    assert "at most 1000 bytes" in response.json()["error"]


def test_json_only(alice_sync: Any) -> None:
    _instance, api = alice_sync

    response = api.client.post("/api/v1/changes", {"operations": "x"}, HTTP_AUTHORIZATION=f"Bearer {api.token}")

    assert response.status_code == 415
    assert "error" in response.json()


def test_the_same_op_id_twice_in_one_batch_is_applied_once(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    create = {"op_id": "1", "op": "create", "type": "contact", "fields": {"last_name": "Once"}}

    first, second = push(api, create, create)

    assert first == second
    assert Contact.objects.filter(last_name="Once").count() == 1
