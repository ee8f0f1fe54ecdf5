"""My conflicts, from the desktop clients: a stale push's conflict, resolved with the chosen side."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from audit.log import Actor
from audit.models import AuditEvent
from clients.models import ClientConflict, ClientInstance, ConflictClosed, ConflictStatus, RecordGone
from crm.models import Contact

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact(org: Any, alice: Any) -> Contact:
    contact = Contact.objects.create(organization=org, owner=alice, last_name="Ann", job_title="Analyst")
    contact.job_title = "Director"  # changed in the portal after the client last pulled it
    contact.save(update_fields=["job_title"])
    return contact


def make_client_conflict(user: Any, org: Any, contact: Contact, ours: dict[str, Any] | None = None) -> ClientConflict:
    instance, _token = ClientInstance.register(Actor.system("tests"), user, org, "Laptop", "LAPTOP-1", "9.1")
    return ClientConflict.objects.create(
        instance=instance,
        user=user,
        organization=org,
        record_type="contact",
        record_id=contact.pk,
        op_id="op-1",
        op="delete" if ours and ours.get("deleted") else "update",
        base={"version": 1},
        theirs={"version": contact.version, "deleted": False, "fields": {"job_title": contact.job_title}},
        ours=ours or {"fields": {"job_title": "Countess", "mobile_phone": "+1 555 0199"}},
    )


def test_it_lists_the_fields_side_by_side(alice_client: Client, org: Any, alice: Any, contact: Contact) -> None:
    conflict = make_client_conflict(alice, org, contact)

    response = alice_client.get("/me/conflicts/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "From your desktop clients" in page
    assert f'id="client-conflict-{conflict.pk}"' in page
    for text in ("Job title", "Director", "Countess", "+1 555 0199", "Laptop", "based on version 1"):
        assert text in page
    assert f"/crm/contacts/{contact.pk}/" in page
    assert f"/me/conflicts/client/{conflict.pk}/keep-crm/" in page
    assert f"/me/conflicts/client/{conflict.pk}/take-client/" in page


def test_the_clients_page_links_to_my_conflicts(alice_client: Client, org: Any, alice: Any, contact: Contact) -> None:
    conflict = make_client_conflict(alice, org, contact)

    page = alice_client.get("/clients/").content.decode()

    assert f'href="/me/conflicts/#client-conflict-{conflict.pk}"' in page
    assert "Resolve on My conflicts" in page


def test_keeping_the_crm_version_leaves_the_record_alone(
    alice_client: Client, org: Any, alice: Any, contact: Contact
) -> None:
    conflict = make_client_conflict(alice, org, contact)
    version = contact.version

    response = alice_client.post(f"/me/conflicts/client/{conflict.pk}/keep-crm/")

    assert (response.status_code, response.url) == (302, "/me/conflicts/")
    contact.refresh_from_db()
    assert (contact.job_title, contact.version) == ("Director", version)
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.CLOSED
    event = AuditEvent.objects.get(action="client_conflict.resolved")
    assert (event.actor_name, event.object_id) == ("alice", str(conflict.pk))
    assert event.changes["kept"] == ["", "crm"]
    assert "job_title" not in event.changes


def test_taking_the_clients_version_applies_the_sent_fields(
    alice_client: Client, org: Any, alice: Any, contact: Contact
) -> None:
    conflict = make_client_conflict(alice, org, contact)
    version = contact.version

    response = alice_client.post(f"/me/conflicts/client/{conflict.pk}/take-client/")

    assert (response.status_code, response.url) == (302, "/me/conflicts/")
    contact.refresh_from_db()
    assert (contact.job_title, contact.mobile_phone, contact.last_name) == ("Countess", "+1 555 0199", "Ann")
    assert contact.version == version + 1
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.CLOSED
    event = AuditEvent.objects.get(action="client_conflict.resolved")
    assert event.changes["kept"] == ["", "client"]
    assert event.changes["job_title"] == ["Director", "Countess"]


def test_taking_the_clients_delete_deletes_the_record(
    alice_client: Client, org: Any, alice: Any, contact: Contact
) -> None:
    conflict = make_client_conflict(alice, org, contact, ours={"deleted": True})

    alice_client.post(f"/me/conflicts/client/{conflict.pk}/take-client/")

    assert Contact.all_objects.get(pk=contact.pk).is_deleted


def test_resolving_twice_applies_nothing_twice(alice_client: Client, org: Any, alice: Any, contact: Contact) -> None:
    conflict = make_client_conflict(alice, org, contact)
    alice_client.post(f"/me/conflicts/client/{conflict.pk}/take-client/")
    contact.refresh_from_db()
    version = contact.version

    response = alice_client.post(f"/me/conflicts/client/{conflict.pk}/take-client/", follow=True)

    assert "closed already" in response.content.decode()
    contact.refresh_from_db()
    assert contact.version == version
    assert AuditEvent.objects.filter(action="client_conflict.resolved").count() == 1
    with pytest.raises(ConflictClosed):
        conflict.resolve(Actor.system("tests"), "crm")


def test_a_value_the_record_refuses_changes_nothing(
    alice_client: Client, org: Any, alice: Any, contact: Contact
) -> None:
    conflict = make_client_conflict(alice, org, contact, ours={"fields": {"last_name": None, "job_title": "X"}})
    version = contact.version

    response = alice_client.post(f"/me/conflicts/client/{conflict.pk}/take-client/", follow=True)

    assert "could not be applied" in response.content.decode()
    contact.refresh_from_db()
    assert (contact.job_title, contact.version) == ("Director", version)
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.OPEN
    assert not AuditEvent.objects.filter(action="client_conflict.resolved").exists()


def test_a_record_deleted_meanwhile_closes_the_conflict_and_says_so(
    alice_client: Client, org: Any, alice: Any, contact: Contact
) -> None:
    conflict = make_client_conflict(alice, org, contact)
    contact.delete()

    page = alice_client.get("/me/conflicts/").content.decode()
    assert "no longer in the CRM" in page
    response = alice_client.post(f"/me/conflicts/client/{conflict.pk}/take-client/", follow=True)

    assert "deleted meanwhile" in response.content.decode()
    record = Contact.all_objects.get(pk=contact.pk)
    assert (record.is_deleted, record.job_title) == (True, "Director")
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.CLOSED
    assert AuditEvent.objects.get(action="client_conflict.resolved").changes["kept"] == ["", "client"]


def test_the_model_says_when_the_record_is_gone(org: Any, alice: Any, contact: Contact) -> None:
    conflict = make_client_conflict(alice, org, contact)
    Contact.all_objects.filter(pk=contact.pk).delete()

    with pytest.raises(RecordGone):
        conflict.resolve(Actor.system("tests"), "client")

    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.CLOSED


def test_it_hides_someone_elses_conflict(
    alice_client: Client, org: Any, alice: Any, bob: Any, contact: Contact
) -> None:
    bobs = make_client_conflict(bob, org, contact)

    page = alice_client.get("/me/conflicts/").content.decode()

    assert str(bobs.pk) not in page
    assert 'id="no-client-conflicts"' in page
    for action in ("keep-crm", "take-client"):
        assert alice_client.post(f"/me/conflicts/client/{bobs.pk}/{action}/").status_code == 404
    bobs.refresh_from_db()
    assert bobs.status == ConflictStatus.OPEN


def test_it_refuses_get(alice_client: Client, org: Any, alice: Any, contact: Contact) -> None:
    conflict = make_client_conflict(alice, org, contact)

    for action in ("keep-crm", "take-client"):
        assert alice_client.get(f"/me/conflicts/client/{conflict.pk}/{action}/").status_code == 405
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.OPEN
