"""My settings: the tracking rule and the synchronizing organization, explicit and audited."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from mailboxes.models import Mailbox, Membership, Organization, TrackingRule
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def messages_of(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def test_the_page_shows_both_settings_and_when_they_apply(
    alice_client: Client, alice_mailbox: Mailbox, second_org: Organization
) -> None:
    response = alice_client.get("/me/settings/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Changes take effect at the next sync" in page
    assert re.search(r'value="replies"[^>]*checked', page)
    assert "Acme" in page and "Initech" in page


def test_the_tracking_rule_changes_and_is_audited(alice_client: Client, alice_mailbox: Mailbox) -> None:
    response = alice_client.post("/me/settings/tracking-rule/", {"tracking_rule": TrackingRule.ALL}, follow=True)

    alice_mailbox.refresh_from_db()
    assert alice_mailbox.tracking_rule == TrackingRule.ALL
    assert "This takes effect at the next sync." in messages_of(response)
    event = AuditEvent.objects.get(action="mailbox.updated")
    assert (event.actor_name, event.object_id) == ("alice", str(alice_mailbox.pk))
    assert event.changes == {"tracking_rule": ["replies", "all"]}


def test_an_unknown_tracking_rule_is_refused(alice_client: Client, alice_mailbox: Mailbox) -> None:
    response = alice_client.post("/me/settings/tracking-rule/", {"tracking_rule": "everything"})

    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.tracking_rule == TrackingRule.REPLIES
    assert not AuditEvent.objects.filter(action="mailbox.updated").exists()


def test_without_a_mailbox_there_is_no_tracking_rule(bob_client: Client, alice_mailbox: Mailbox) -> None:
    assert "You have no mailbox yet." in bob_client.get("/me/settings/").content.decode()
    assert bob_client.post("/me/settings/tracking-rule/", {"tracking_rule": "all"}).status_code == 404
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.tracking_rule == TrackingRule.REPLIES


def test_the_synchronizing_organization_changes_and_is_audited(
    alice_client: Client, alice: Any, org: Organization, second_org: Organization
) -> None:
    initech = Membership.objects.get(user=alice, organization=second_org)

    response = alice_client.post("/me/settings/sync-organization/", {"membership": str(initech.pk)}, follow=True)

    assert "Initech is your synchronizing organization. This takes effect at the next sync." in messages_of(response)
    synchronizing = Membership.objects.filter(user=alice, is_sync_organization=True).values_list("organization__name")
    assert list(synchronizing) == [("Initech",)]
    taken = AuditEvent.objects.get(action="membership.sync_organization_taken")
    released = AuditEvent.objects.get(action="membership.sync_organization_released")
    assert (taken.actor_name, taken.object_id) == ("alice", str(initech.pk))
    assert released.actor_name == "alice"


def test_someone_elses_membership_cannot_be_chosen(
    alice_client: Client, alice: Any, bob: Any, org: Organization
) -> None:
    bobs = Membership.objects.get(user=bob)
    Membership.objects.filter(pk=bobs.pk).update(is_sync_organization=False)

    response = alice_client.post("/me/settings/sync-organization/", {"membership": str(bobs.pk)})

    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    assert not Membership.objects.get(pk=bobs.pk).is_sync_organization
    assert not AuditEvent.objects.filter(action__startswith="membership.sync_organization").exists()


@pytest.mark.parametrize("url", ["/me/settings/tracking-rule/", "/me/settings/sync-organization/"])
def test_actions_refuse_get(alice_client: Client, alice_mailbox: Mailbox, url: str) -> None:
    assert alice_client.get(url).status_code == 405


def test_someone_without_an_organization_is_refused(charlie: Any) -> None:
    assert client_for(charlie).get("/me/settings/").status_code == 403
