"""The audit log: append-only, one event per change, secrets never written down."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core import serializers
from django.db import connection
from django.test import RequestFactory

from audit.log import MASK, MASK_CHANGED, Actor, client_ip, record
from audit.models import AppendOnlyError, AuditEvent
from mailboxes.models import EmailServerProfile, Mailbox, Organization, ProfileKind
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

PLAINTEXT = "correct-horse-battery-staple"
NEW_PLAINTEXT = "tr0ub4dor-and-3"


def last_event(obj: Any) -> AuditEvent:
    return AuditEvent.objects.for_object(obj).order_by("-time").first()


def as_stored(event: AuditEvent) -> str:
    """Everything the event holds: its serialized fields and its raw database row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT changes, object_repr, actor_name, action FROM audit_auditevent WHERE object_id = %s",
            [event.object_id],
        )
        rows = cursor.fetchall()
    return serializers.serialize("json", [event]) + json.dumps(rows, default=str)


# Append-only ------------------------------------------------------------------------------


@pytest.fixture
def event(org: Organization, system: Actor) -> AuditEvent:
    return record(system, "organization.tested", org, changes={"name": ["a", "b"]}, organization=org)


def test_an_event_cannot_be_saved_again(event: AuditEvent) -> None:
    event.action = "organization.forged"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "organization.tested"


def test_an_event_cannot_be_deleted(event: AuditEvent) -> None:
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_queryset_cannot_update_events(event: AuditEvent) -> None:
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="organization.forged")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().update(actor_name="nobody")
    assert AuditEvent.objects.get(pk=event.pk).action == "organization.tested"
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "tests"


def test_a_queryset_cannot_delete_events(event: AuditEvent) -> None:
    count = AuditEvent.objects.count()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == count


# save_audited / delete_audited ------------------------------------------------------------


def test_save_audited_records_a_created_event(admin: Any, org: Organization) -> None:
    new = Organization(name="Initech", ignore_logical_deletes=False)
    new.save_audited(Actor(user=admin, ip="192.0.2.10"))

    event = last_event(new)
    assert event.action == "organization.created"
    assert (event.actor, event.actor_name, event.ip) == (admin, "admin", "192.0.2.10")
    assert (event.object_type, event.object_id, event.object_repr) == ("mailboxes.organization", str(new.pk), "Initech")
    assert (event.organization_id, event.organization_name) == (new.pk, "Initech")
    # Defaults that say nothing (False, empty) are left out of a creation.
    assert event.changes == {
        "name": [None, "Initech"],
        "require_approval_user_mailboxes": [None, True],
        "require_approval_queue_mailboxes": [None, True],
        "tracked_category": [None, "Tracked to CRM"],
    }


def test_save_audited_records_only_the_changed_fields(org: Organization, admin: Any) -> None:
    loaded = Organization.objects.get(pk=org.pk)
    loaded.name = "Acme Corporation"
    loaded.ignore_logical_deletes = True
    loaded.save_audited(Actor(user=admin))

    event = last_event(org)
    assert event.action == "organization.updated"
    assert event.changes == {"name": ["Acme", "Acme Corporation"], "ignore_logical_deletes": [False, True]}


def test_a_named_action_is_kept(org: Organization, system: Actor) -> None:
    loaded = Organization.objects.get(pk=org.pk)
    loaded.auto_approve_instance_changes = True
    loaded.save_audited(system, "organization.policy_changed")
    assert last_event(org).action == "organization.policy_changed"


def test_no_event_when_nothing_changed(org: Organization, system: Actor) -> None:
    before = AuditEvent.objects.count()
    loaded = Organization.objects.get(pk=org.pk)
    loaded.save_audited(system)
    loaded.name = "Acme"  # the same value again
    loaded.save_audited(system)
    assert AuditEvent.objects.count() == before


def test_extra_changes_are_recorded_in_the_same_event(org: Organization, system: Actor) -> None:
    before = AuditEvent.objects.count()
    loaded = Organization.objects.get(pk=org.pk)
    loaded.name = "Acme Corporation"
    loaded.save_audited(system, extra_changes={"reason": ["", "The new name"]})

    assert AuditEvent.objects.count() == before + 1
    assert last_event(org).changes == {"name": ["Acme", "Acme Corporation"], "reason": ["", "The new name"]}


def test_extra_changes_alone_are_an_event(org: Organization, system: Actor) -> None:
    loaded = Organization.objects.get(pk=org.pk)
    loaded.save_audited(system, "organization.reviewed", extra_changes={"reason": ["", "Yearly review"]})
    event = last_event(org)
    assert (event.action, event.changes) == ("organization.reviewed", {"reason": ["", "Yearly review"]})


def test_two_saves_record_two_steps(org: Organization, system: Actor) -> None:
    loaded = Organization.objects.get(pk=org.pk)
    loaded.name = "Step 1"
    loaded.save_audited(system)
    loaded.name = "Step 2"
    loaded.save_audited(system)
    names = [e.changes["name"] for e in AuditEvent.objects.for_object(org).order_by("time")]
    assert names == [["Acme", "Step 1"], ["Step 1", "Step 2"]]


def test_update_fields_record_only_what_is_saved(org: Organization, system: Actor) -> None:
    loaded = Organization.objects.get(pk=org.pk)
    loaded.name = "Not saved"
    loaded.ignore_logical_deletes = True
    loaded.save_audited(system, update_fields=["ignore_logical_deletes"])

    assert last_event(org).changes == {"ignore_logical_deletes": [False, True]}
    assert Organization.objects.get(pk=org.pk).name == "Acme"


def test_secrets_are_masked_on_create(org: Organization, admin: Any) -> None:
    profile = EmailServerProfile(
        organization=org,
        name="Secretive",
        kind=ProfileKind.EXCHANGE_ONLINE,
        use_autodiscover=True,
        username="svc@example.com",
        password=PLAINTEXT,
        oauth_client_secret=NEW_PLAINTEXT,
    )
    profile.save_audited(Actor(user=admin))

    event = last_event(profile)
    assert event.changes["password"] == ["", MASK_CHANGED]
    assert event.changes["oauth_client_secret"] == ["", MASK_CHANGED]
    stored = as_stored(event)
    assert PLAINTEXT not in stored
    assert NEW_PLAINTEXT not in stored


def test_a_changed_secret_shows_as_changed_and_never_in_plaintext(profile: EmailServerProfile, admin: Any) -> None:
    loaded = EmailServerProfile.objects.get(pk=profile.pk)
    loaded.password = NEW_PLAINTEXT
    loaded.save_audited(Actor(user=admin))

    event = last_event(profile)
    assert event.changes == {"password": [MASK, MASK_CHANGED]}
    stored = as_stored(event)
    assert "s3cret-profile-pw" not in stored
    assert NEW_PLAINTEXT not in stored


def test_a_cleared_secret_shows_as_cleared(profile: EmailServerProfile, admin: Any) -> None:
    loaded = EmailServerProfile.objects.get(pk=profile.pk)
    loaded.password = ""
    loaded.save_audited(Actor(user=admin))
    assert last_event(profile).changes == {"password": [MASK, ""]}


def test_an_unchanged_secret_is_not_mentioned(profile: EmailServerProfile, admin: Any) -> None:
    loaded = EmailServerProfile.objects.get(pk=profile.pk)
    loaded.password = "s3cret-profile-pw"
    loaded.timeout_seconds = 60
    loaded.save_audited(Actor(user=admin))
    assert last_event(profile).changes == {"timeout_seconds": [120, 60]}


def test_foreign_keys_are_recorded_as_text(
    org: Organization, alice: Any, profile: EmailServerProfile, pop3_profile: EmailServerProfile, admin: Any
) -> None:
    mailbox = Mailbox(organization=org, user=alice, address="alice@example.com", profile=profile)
    mailbox.prepare_approval()
    mailbox.save_audited(Actor(user=admin))
    created = last_event(mailbox).changes
    assert created["user"] == [None, "alice"]
    assert created["profile"] == [None, "Exchange"]

    loaded = Mailbox.objects.get(pk=mailbox.pk)
    loaded.profile = pop3_profile
    loaded.act_method = "none"
    loaded.save_audited(Actor(user=admin))
    assert last_event(mailbox).changes == {"profile": ["Exchange", "POP3"], "act_method": ["server_side", "none"]}


def test_delete_audited_records_and_deletes(org: Organization, admin: Any) -> None:
    doomed = Organization(name="Doomed")
    doomed.save_audited(Actor(user=admin))
    pk = doomed.pk

    doomed.delete_audited(Actor(user=admin, ip="192.0.2.99"))

    assert not Organization.objects.filter(pk=pk).exists()
    event = AuditEvent.objects.filter(object_id=str(pk), action="organization.deleted").get()
    assert (event.actor, event.object_repr, event.ip) == (admin, "Doomed", "192.0.2.99")


# Actors and addresses ---------------------------------------------------------------------


def test_client_ip_is_the_socket_address_without_a_header_setting(settings: Any) -> None:
    settings.CLIENT_IP_HEADER = ""
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.5")
    # Without a configured proxy the header is a client's claim and is ignored.
    assert client_ip(request) == "10.1.2.3"


def test_client_ip_takes_the_address_the_trusted_proxy_added(settings: Any) -> None:
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR=" 203.0.113.5 , 10.0.0.2")
    # The first entry is whatever the client sent; one proxy (the default) appended the last.
    assert client_ip(request) == "10.0.0.2"


def test_client_ip_falls_back_to_the_socket_when_the_header_is_missing(settings: Any) -> None:
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    assert client_ip(RequestFactory().get("/", REMOTE_ADDR="10.1.2.3")) == "10.1.2.3"
    assert client_ip(RequestFactory().get("/", REMOTE_ADDR="")) is None


def test_an_actor_from_a_request_carries_user_and_address(settings: Any, alice: Any) -> None:
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.2.3", HTTP_X_REAL_IP="198.51.100.1")
    request.user = alice
    actor = Actor.from_request(request)
    assert (actor.user, actor.ip, actor.display_name) == (alice, "198.51.100.1", "alice")


def test_the_system_actor_has_no_user(org: Organization) -> None:
    assert Actor.system().display_name == "system"
    event = record(Actor.system("nightly-job"), "organization.checked", org, organization=org)
    assert (event.actor, event.actor_name, event.ip) == (None, "nightly-job", None)


def test_events_survive_the_deletion_of_their_actor(org: Organization) -> None:
    dora = make_user("dora")
    loaded = Organization.objects.get(pk=org.pk)
    loaded.name = "Acme by Dora"
    loaded.save_audited(Actor(user=dora))
    event_pk = last_event(org).pk

    dora.delete()

    event = AuditEvent.objects.get(pk=event_pk)
    assert event.actor is None
    assert event.actor_name == "dora"
    assert event.changes == {"name": ["Acme", "Acme by Dora"]}
