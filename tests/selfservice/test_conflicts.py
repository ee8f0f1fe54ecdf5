"""My conflicts: the open conflicts of the user's own mailbox, resolved with the chosen side."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from crm.models import Contact
from mailboxes.models import Mailbox
from syncjobs.models import ConflictStatus
from tests.conftest import make_conflict

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact(org: Any, alice: Any) -> Contact:
    # The engine applied the mailbox's values (the later change): the record holds them now.
    return Contact.objects.create(
        organization=org, owner=alice, last_name="Ann", job_title="Countess", mobile_phone="+1 555 0199"
    )


def test_it_shows_both_versions_side_by_side(alice_client: Client, alice_mailbox: Mailbox, contact: Contact) -> None:
    conflict = make_conflict(alice_mailbox, contact)

    response = alice_client.get("/me/conflicts/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f'id="conflict-{conflict.pk}"' in page
    for text in ("Job title", "Engineer", "Analyst", "Countess", "+1 555 0101", "Keep the CRM version"):
        assert text in page
    assert f"/crm/contacts/{contact.pk}/" in page


def test_it_hides_the_conflicts_of_other_mailboxes(
    alice_client: Client, alice_mailbox: Mailbox, bob_mailbox: Mailbox, contact: Contact
) -> None:
    bobs = make_conflict(bob_mailbox, contact)

    page = alice_client.get("/me/conflicts/").content.decode()

    assert str(bobs.pk) not in page
    assert 'id="no-conflicts"' in page
    for action in ("keep-crm", "take-mailbox"):
        assert alice_client.post(f"/me/conflicts/{bobs.pk}/{action}/").status_code == 404
    bobs.refresh_from_db()
    assert bobs.status == ConflictStatus.OPEN


def test_keeping_the_crm_version_writes_it_into_the_record(
    alice_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    conflict = make_conflict(alice_mailbox, contact, applied="exchange")
    version = contact.version

    response = alice_client.post(f"/me/conflicts/{conflict.pk}/keep-crm/")

    assert (response.status_code, response.url) == (302, "/me/conflicts/")
    contact.refresh_from_db()
    assert (contact.job_title, contact.mobile_phone) == ("Analyst", "+1 555 0101")
    assert contact.version == version + 1
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.CLOSED
    assert conflict.resolution == {"job_title": "crm", "mobile_phone": "crm"}
    assert conflict.resolved_by == "Alice"
    event = AuditEvent.objects.get(action="mailbox.conflict_resolved")
    assert (event.actor_name, event.object_id) == ("alice", str(alice_mailbox.pk))
    assert event.changes["job_title"] == ["Countess", "Analyst"]
    assert "kept the CRM version" in event.changes["reason"][1]


def test_taking_the_mailbox_version_writes_it_into_the_record(
    alice_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    Contact.objects.filter(pk=contact.pk).update(job_title="Analyst", mobile_phone="+1 555 0101")
    conflict = make_conflict(alice_mailbox, contact, applied="crm")

    alice_client.post(f"/me/conflicts/{conflict.pk}/take-mailbox/")

    contact.refresh_from_db()
    assert (contact.job_title, contact.mobile_phone) == ("Countess", "+1 555 0199")
    conflict.refresh_from_db()
    assert (conflict.status, conflict.resolution["job_title"]) == (ConflictStatus.CLOSED, "exchange")
    assert AuditEvent.objects.filter(action="mailbox.conflict_resolved", actor_name="alice").exists()


def test_choosing_the_side_applied_already_leaves_the_record_alone(
    alice_client: Client, alice_mailbox: Mailbox, contact: Contact
) -> None:
    conflict = make_conflict(alice_mailbox, contact, applied="exchange")
    version = contact.version

    alice_client.post(f"/me/conflicts/{conflict.pk}/take-mailbox/")

    contact.refresh_from_db()
    assert contact.version == version
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.CLOSED


def test_a_closed_conflict_is_left_alone(alice_client: Client, alice_mailbox: Mailbox, contact: Contact) -> None:
    conflict = make_conflict(alice_mailbox, contact)
    alice_client.post(f"/me/conflicts/{conflict.pk}/keep-crm/")

    response = alice_client.post(f"/me/conflicts/{conflict.pk}/take-mailbox/", follow=True)

    assert "closed already" in " ".join(str(m) for m in response.context["messages"])
    contact.refresh_from_db()
    assert contact.job_title == "Analyst"
    assert AuditEvent.objects.filter(action="mailbox.conflict_resolved").count() == 1


@pytest.mark.parametrize("action", ["keep-crm", "take-mailbox"])
def test_actions_refuse_get(alice_client: Client, alice_mailbox: Mailbox, contact: Contact, action: str) -> None:
    conflict = make_conflict(alice_mailbox, contact)

    assert alice_client.get(f"/me/conflicts/{conflict.pk}/{action}/").status_code == 405
