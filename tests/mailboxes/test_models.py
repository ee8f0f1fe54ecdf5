"""Model rules and constraints: organizations, memberships, server profiles, mailboxes.

Each rule is checked twice where it has two guards: through ``full_clean`` (the
clear message a form shows) and through the database (the constraint that holds
even when a caller skips validation).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError, IntegrityError, transaction

from audit.log import Actor
from audit.models import AuditEvent
from mailboxes.models import (
    ActMethod,
    ApprovalStatus,
    AuthType,
    CredentialsSource,
    EmailServerProfile,
    IncomingMethod,
    Mailbox,
    Membership,
    Organization,
    OutgoingMethod,
    OwnerType,
    ProfileKind,
    Role,
    find_mapped,
)
from mailboxes.models import (
    TestStatus as Outcome,
)
from tests.conftest import make_mailbox, make_profile

pytestmark = pytest.mark.django_db


def errors_of(obj: Any) -> dict[str, list[str]]:
    """The messages full_clean raises, by field; fails the test if it raises none."""
    with pytest.raises(ValidationError) as caught:
        obj.full_clean()
    return caught.value.message_dict


def constraint_errors(obj: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        obj.validate_constraints()
    return caught.value.messages


def refused_by_database(obj: Any) -> None:
    # The savepoint keeps the test's transaction usable on PostgreSQL.
    with pytest.raises(IntegrityError), transaction.atomic():
        obj.save()


def events(obj: Any, action: str | None = None) -> list[AuditEvent]:
    qs = AuditEvent.objects.for_object(obj).order_by("time")
    if action:
        qs = qs.filter(action=action)
    return list(qs)


def fresh(obj: Any) -> Any:
    """The object as a request would load it (with its audit snapshot)."""
    return type(obj).objects.get(pk=obj.pk)


# Mailbox: sync methods --------------------------------------------------------------------


def test_a_valid_mailbox_passes_full_clean(org: Organization, alice: Any, profile: EmailServerProfile) -> None:
    Mailbox(organization=org, user=alice, address="alice@example.com", profile=profile).full_clean()


def test_a_forward_mailbox_sends_nothing(org: Organization, alice: Any, profile: EmailServerProfile) -> None:
    mailbox = Mailbox(
        organization=org,
        user=alice,
        address="alice@example.com",
        profile=profile,
        incoming_method=IncomingMethod.FORWARD_MAILBOX,
        outgoing_method=OutgoingMethod.SERVER_SIDE,
    )
    assert errors_of(mailbox) == {"outgoing_method": ["A forward mailbox sends no email: choose None."]}

    mailbox.outgoing_method = OutgoingMethod.NONE
    mailbox.full_clean()


def test_it_rejects_act_on_a_pop3_profile(org: Organization, alice: Any, pop3_profile: EmailServerProfile) -> None:
    mailbox = Mailbox(
        organization=org,
        user=alice,
        address="alice@example.com",
        profile=pop3_profile,
        act_method=ActMethod.SERVER_SIDE,
    )
    assert list(errors_of(mailbox)) == ["act_method"]
    assert "POP3/IMAP profile carries email only" in errors_of(mailbox)["act_method"][0]


def test_it_rejects_act_on_an_imap_profile(org: Organization, alice: Any) -> None:
    imap = make_profile(
        org,
        "IMAP",
        kind=ProfileKind.IMAP_SMTP,
        ews_url="",
        incoming_host="imap.example.com",
        incoming_port=993,
        outgoing_host="smtp.example.com",
        outgoing_port=587,
    )
    mailbox = Mailbox(organization=org, user=alice, address="alice@example.com", profile=imap)
    assert list(errors_of(mailbox)) == ["act_method"]


def test_a_pop3_profile_carries_email_with_act_through_the_client(
    org: Organization, alice: Any, pop3_profile: EmailServerProfile
) -> None:
    for act in (ActMethod.CLIENT, ActMethod.NONE):
        Mailbox(
            organization=org, user=alice, address="alice@example.com", profile=pop3_profile, act_method=act
        ).full_clean()


@pytest.mark.parametrize(
    "methods",
    [
        {"incoming_method": IncomingMethod.SERVER_SIDE},
        {"incoming_method": IncomingMethod.FORWARD_MAILBOX, "outgoing_method": OutgoingMethod.NONE},
        {"outgoing_method": OutgoingMethod.SERVER_SIDE},
        {"act_method": ActMethod.SERVER_SIDE},
    ],
    ids=["incoming", "forward", "outgoing", "act"],
)
def test_server_side_sync_needs_a_profile(org: Organization, alice: Any, methods: dict[str, str]) -> None:
    values = {"incoming_method": "client", "outgoing_method": "client", "act_method": "client", **methods}
    mailbox = Mailbox(organization=org, user=alice, address="alice@example.com", **values)
    assert errors_of(mailbox) == {"profile": ["Server-side synchronization needs an email server profile."]}


def test_a_client_only_mailbox_needs_no_profile(org: Organization, alice: Any) -> None:
    Mailbox(
        organization=org,
        user=alice,
        address="alice@example.com",
        incoming_method=IncomingMethod.CLIENT,
        outgoing_method=OutgoingMethod.NONE,
        act_method=ActMethod.CLIENT,
    ).full_clean()


def test_the_profile_must_be_of_the_mailbox_organization(
    org: Organization, alice: Any, other_profile: EmailServerProfile
) -> None:
    mailbox = Mailbox(organization=org, user=alice, address="alice@example.com", profile=other_profile)
    assert errors_of(mailbox) == {"profile": ["Choose a server profile of the mailbox's organization."]}


def test_a_user_mailbox_names_its_user_and_a_queue_mailbox_its_queue(
    org: Organization, profile: EmailServerProfile
) -> None:
    assert errors_of(Mailbox(organization=org, profile=profile))["user"] == ["Choose the user who owns this mailbox."]
    queue = Mailbox(organization=org, owner_type=OwnerType.QUEUE, profile=profile)
    assert errors_of(queue)["queue_name"] == ["Name the queue that owns this mailbox."]


def test_clean_stores_the_address_in_lower_case(org: Organization, alice: Any, profile: EmailServerProfile) -> None:
    mailbox = Mailbox(organization=org, user=alice, address="Alice@Example.COM", profile=profile)
    mailbox.full_clean()
    assert mailbox.address == "alice@example.com"


# Mailbox: the one-of constraints ----------------------------------------------------------


def test_a_second_mailbox_for_the_same_user_is_refused(
    org: Organization, alice: Any, alice_mailbox: Mailbox, profile: EmailServerProfile
) -> None:
    second = Mailbox(organization=org, user=alice, address="alice.two@example.com", profile=profile)
    assert errors_of(second) == {"user": ["This user has a mailbox already: a user has one primary mailbox."]}
    refused_by_database(second)
    assert Mailbox.objects.filter(user=alice).count() == 1


def test_address_uniqueness_ignores_case(
    org: Organization, bob: Any, alice_mailbox: Mailbox, profile: EmailServerProfile
) -> None:
    taken = "ALICE@Example.com"
    # The form's path: full_clean (which lower-cases) and the constraint on its own (which
    # compares case-insensitively even when nothing lower-cased the value).
    assert errors_of(Mailbox(organization=org, user=bob, address=taken, profile=profile)) == {
        NON_FIELD_ERRORS: ["Another mailbox has this email address."]
    }
    same_but_shouting = Mailbox(organization=org, user=bob, address=taken, profile=profile)
    assert constraint_errors(same_but_shouting) == ["Another mailbox has this email address."]

    # The database's path: a save that skips validation.
    refused_by_database(same_but_shouting)
    assert find_mapped("alice@EXAMPLE.com") == alice_mailbox


def test_the_address_rule_does_not_count_the_mailbox_itself(alice_mailbox: Mailbox) -> None:
    mailbox = fresh(alice_mailbox)
    mailbox.address = "Alice@Example.com"
    mailbox.full_clean()
    mailbox.save()


def test_mailboxes_without_an_address_do_not_collide(
    org: Organization, alice: Any, bob: Any, profile: EmailServerProfile
) -> None:
    make_mailbox(org, alice, "", profile)
    make_mailbox(org, bob, "", profile)
    assert Mailbox.objects.filter(address="").count() == 2


@pytest.mark.parametrize(
    "owner",
    [
        {"owner_type": OwnerType.USER, "queue_name": "Support"},
        {"owner_type": OwnerType.QUEUE, "queue_name": "Support"},
        {"owner_type": OwnerType.QUEUE, "queue_name": "", "user": None},
        {"owner_type": OwnerType.USER, "user": None},
    ],
    ids=["user-and-queue-name", "queue-with-user", "queue-without-name", "user-without-user"],
)
def test_a_mailbox_is_owned_by_a_user_or_a_queue(
    org: Organization, alice: Any, profile: EmailServerProfile, owner: dict[str, Any]
) -> None:
    mailbox = Mailbox(organization=org, user=alice, address="x@example.com", profile=profile)
    for name, value in owner.items():
        setattr(mailbox, name, value)
    assert constraint_errors(mailbox) == ["A mailbox belongs to either a user or a queue."]
    refused_by_database(mailbox)


def test_a_queue_mailbox_is_valid(org: Organization, profile: EmailServerProfile) -> None:
    queue = Mailbox(
        organization=org,
        owner_type=OwnerType.QUEUE,
        queue_name="Support",
        address="support@example.com",
        profile=profile,
    )
    queue.full_clean()
    queue.save()
    assert queue.owner_name == "Support"


# Mailbox: approval ------------------------------------------------------------------------


def test_a_new_address_waits_for_approval(alice_mailbox: Mailbox) -> None:
    assert alice_mailbox.approval_status == ApprovalStatus.PENDING
    assert not alice_mailbox.address_ok()


def test_no_approval_needed_means_approved(org: Organization, alice: Any, profile: EmailServerProfile) -> None:
    org.require_approval_user_mailboxes = False
    org.save()
    mailbox = Mailbox(organization=org, user=alice, address="alice@example.com", profile=profile)
    mailbox.save_from_form(Actor.system())
    assert fresh(mailbox).approval_status == ApprovalStatus.APPROVED


def test_no_address_means_nothing_to_approve(org: Organization, alice: Any, profile: EmailServerProfile) -> None:
    mailbox = Mailbox(organization=org, user=alice, address="", profile=profile)
    mailbox.save_from_form(Actor.system())
    assert mailbox.approval_status == ApprovalStatus.EMPTY
    with pytest.raises(ValidationError, match="no email address"):
        mailbox.approve(Actor.system())
    assert fresh(mailbox).approval_status == ApprovalStatus.EMPTY


@pytest.mark.parametrize(
    ("user_flag", "queue_flag", "user_status", "queue_status"),
    [
        (True, False, ApprovalStatus.PENDING, ApprovalStatus.APPROVED),
        (False, True, ApprovalStatus.APPROVED, ApprovalStatus.PENDING),
    ],
)
def test_queue_mailbox_approval_uses_the_queue_flag(
    org: Organization,
    alice: Any,
    profile: EmailServerProfile,
    user_flag: bool,
    queue_flag: bool,
    user_status: str,
    queue_status: str,
) -> None:
    org.require_approval_user_mailboxes = user_flag
    org.require_approval_queue_mailboxes = queue_flag
    org.save()
    user_mailbox = make_mailbox(org, alice, "alice@example.com", profile)
    queue = make_mailbox(org, None, "support@example.com", profile, owner_type=OwnerType.QUEUE, queue_name="Support")
    assert (user_mailbox.approval_status, queue.approval_status) == (user_status, queue_status)


def test_approve_records_who_when_and_an_audit_event(alice_mailbox: Mailbox, approver: Any) -> None:
    alice_mailbox.approve(Actor(user=approver, ip="192.0.2.7"))

    mailbox = fresh(alice_mailbox)
    assert mailbox.approval_status == ApprovalStatus.APPROVED
    assert mailbox.approval_changed_by == approver
    assert mailbox.approval_changed_at is not None
    assert mailbox.address_ok()
    [event] = events(mailbox, "mailbox.approved")
    assert (event.actor, event.ip) == (approver, "192.0.2.7")
    assert event.changes == {"approval_status": ["pending", "approved"]}


def test_reject_keeps_the_address_from_syncing(alice_mailbox: Mailbox, approver: Any) -> None:
    alice_mailbox.reject(Actor(user=approver))

    mailbox = fresh(alice_mailbox)
    assert mailbox.approval_status == ApprovalStatus.REJECTED
    assert not mailbox.address_ok()
    assert events(mailbox, "mailbox.rejected")[0].changes == {"approval_status": ["pending", "rejected"]}


def test_reject_records_the_reason_in_the_same_event(alice_mailbox: Mailbox, approver: Any) -> None:
    alice_mailbox.reject(Actor(user=approver), reason="Not one of our domains.")

    mailbox = fresh(alice_mailbox)
    assert (mailbox.approval_status, mailbox.approval_changed_by) == (ApprovalStatus.REJECTED, approver)
    [event] = AuditEvent.objects.for_object(mailbox)
    assert event.action == "mailbox.rejected"
    assert event.changes == {"approval_status": ["pending", "rejected"], "reason": ["", "Not one of our domains."]}


def test_rejecting_again_with_a_reason_records_the_reason(alice_mailbox: Mailbox, approver: Any) -> None:
    alice_mailbox.reject(Actor(user=approver))
    alice_mailbox.reject(Actor(user=approver), reason="Still not ours.")
    assert [e.changes for e in events(alice_mailbox, "mailbox.rejected")] == [
        {"approval_status": ["pending", "rejected"]},
        {"reason": ["", "Still not ours."]},
    ]


def test_reject_refuses_a_mailbox_without_address_and_records_nothing(
    org: Organization, alice: Any, profile: EmailServerProfile, approver: Any
) -> None:
    mailbox = make_mailbox(org, alice, "", profile)
    with pytest.raises(ValidationError, match="no email address"):
        mailbox.reject(Actor(user=approver), reason="Why")
    assert fresh(mailbox).approval_status == ApprovalStatus.EMPTY
    assert events(mailbox, "mailbox.rejected") == []


def test_changing_the_address_sends_it_back_to_pending(alice_mailbox: Mailbox, approver: Any, admin: Any) -> None:
    alice_mailbox.approve(Actor(user=approver))
    mailbox = fresh(alice_mailbox)
    mailbox.address = "alice.new@example.com"
    mailbox.save_from_form(Actor(user=admin))

    mailbox = fresh(alice_mailbox)
    assert mailbox.approval_status == ApprovalStatus.PENDING
    assert mailbox.approval_changed_by is None
    assert mailbox.approval_changed_at is None
    [event] = events(mailbox, "mailbox.updated")
    assert event.changes == {
        "address": ["alice@example.com", "alice.new@example.com"],
        "approval_status": ["approved", "pending"],
    }


def test_an_edit_that_keeps_the_address_keeps_the_approval(alice_mailbox: Mailbox, approver: Any, admin: Any) -> None:
    alice_mailbox.approve(Actor(user=approver))
    mailbox = fresh(alice_mailbox)
    mailbox.tracking_rule = "all"
    mailbox.save_from_form(Actor(user=admin))

    mailbox = fresh(alice_mailbox)
    assert mailbox.approval_status == ApprovalStatus.APPROVED
    assert mailbox.approval_changed_by == approver


def test_release_address_breaks_the_link(
    org: Organization, alice_mailbox: Mailbox, bob: Any, profile: EmailServerProfile, admin: Any
) -> None:
    alice_mailbox.approve(Actor(user=admin))
    mailbox = fresh(alice_mailbox)
    mailbox.enabled_incoming = mailbox.enabled_outgoing = mailbox.enabled_act = True
    mailbox.save()

    fresh(mailbox).release_address(Actor(user=admin))

    released = fresh(mailbox)
    assert released.address == ""
    assert released.approval_status == ApprovalStatus.EMPTY
    assert not (released.enabled_incoming or released.enabled_outgoing or released.enabled_act)
    [event] = events(released, "mailbox.address_released")
    assert event.changes["address"] == ["alice@example.com", ""]
    # The address is free for another mailbox now.
    bobs = make_mailbox(org, bob, "alice@example.com", profile)
    assert find_mapped("alice@example.com") == bobs


# Mailbox: the sync gate -------------------------------------------------------------------


@pytest.fixture
def ready_mailbox(alice_mailbox: Mailbox, admin: Any) -> Mailbox:
    """Alice's mailbox with every incoming condition met."""
    alice_mailbox.approve(Actor(user=admin))
    mailbox = fresh(alice_mailbox)
    mailbox.test_incoming = Outcome.SUCCESS
    mailbox.enabled_incoming = True
    mailbox.save()
    return fresh(mailbox)


def test_a_mailbox_meeting_every_condition_can_sync(ready_mailbox: Mailbox) -> None:
    assert ready_mailbox.can_sync("incoming")
    # Each channel has its own test and switch: incoming passing says nothing about ACT.
    assert not ready_mailbox.can_sync("outgoing")
    assert not ready_mailbox.can_sync("act")


@pytest.mark.parametrize(
    "broken",
    [
        {"is_active": False},
        {"profile": None},
        {"incoming_method": IncomingMethod.NONE},
        {"address": ""},
        {"approval_status": ApprovalStatus.PENDING},
        {"approval_status": ApprovalStatus.REJECTED},
        {"test_incoming": Outcome.NOT_RUN},
        {"test_incoming": Outcome.FAILURE},
        {"enabled_incoming": False},
    ],
    ids=lambda broken: "-".join(f"{k}={v}" for k, v in broken.items()),
)
def test_nothing_syncs_until_every_condition_holds(ready_mailbox: Mailbox, broken: dict[str, Any]) -> None:
    for name, value in broken.items():
        setattr(ready_mailbox, name, value)
    assert not ready_mailbox.can_sync("incoming")


def test_without_required_approval_a_pending_address_can_sync(ready_mailbox: Mailbox, org: Organization) -> None:
    ready_mailbox.approval_status = ApprovalStatus.PENDING
    org.require_approval_user_mailboxes = False
    org.save()
    ready_mailbox.organization = org
    assert ready_mailbox.can_sync("incoming")


# Memberships: one synchronizing organization ----------------------------------------------


def test_a_users_first_organization_is_the_synchronizing_one(
    org: Organization, other_org: Organization, alice: Any, system: Actor
) -> None:
    second = Membership.add(system, alice, other_org, Role.USER)
    assert Membership.objects.get(user=alice, organization=org).is_sync_organization
    assert not second.is_sync_organization


def test_one_synchronizing_organization_per_user_is_enforced_by_the_database(
    other_org: Organization, alice: Any
) -> None:
    refused_by_database(Membership(user=alice, organization=other_org, is_sync_organization=True))
    assert Membership.objects.filter(user=alice, is_sync_organization=True).count() == 1


def test_one_membership_per_user_and_organization(org: Organization, alice: Any) -> None:
    refused_by_database(Membership(user=alice, organization=org, role=Role.ADMINISTRATOR))


def test_make_synchronizing_switches_and_is_audited(
    org: Organization, other_org: Organization, alice: Any, outsider: Any, system: Actor
) -> None:
    old = Membership.objects.get(user=alice, organization=org)
    new = Membership.add(system, alice, other_org, Role.USER)

    new.make_synchronizing(Actor(user=outsider, ip="198.51.100.4"))

    assert list(
        Membership.objects.filter(user=alice, is_sync_organization=True).values_list("organization", flat=True)
    ) == [other_org.pk]
    [released] = events(old, "membership.sync_organization_released")
    [taken] = events(new, "membership.sync_organization_taken")
    assert released.changes == {"is_sync_organization": [True, False]}
    assert taken.changes == {"is_sync_organization": [False, True]}
    assert (released.organization_id, taken.organization_id) == (org.pk, other_org.pk)
    assert {released.actor, taken.actor} == {outsider}
    assert released.time <= taken.time


def test_make_synchronizing_is_all_or_nothing(
    org: Organization, other_org: Organization, alice: Any, system: Actor
) -> None:
    old = Membership.objects.get(user=alice, organization=org)
    new = Membership.add(system, alice, other_org, Role.USER)
    # Another admin removes the new membership meanwhile: taking it over fails...
    Membership.objects.filter(pk=new.pk).delete()

    with pytest.raises(DatabaseError):
        new.make_synchronizing(system)

    # ...and the release of the old one is rolled back with it.
    assert Membership.objects.get(pk=old.pk).is_sync_organization
    assert events(old, "membership.sync_organization_released") == []


def test_make_synchronizing_the_current_one_changes_nothing(org: Organization, alice: Any) -> None:
    current = Membership.objects.get(user=alice, organization=org)
    before = AuditEvent.objects.count()
    current.make_synchronizing(Actor.system())
    assert Membership.objects.get(pk=current.pk).is_sync_organization
    assert AuditEvent.objects.count() == before


def test_a_user_without_a_synchronizing_organization_can_take_one(
    org: Organization, other_org: Organization, alice: Any, system: Actor
) -> None:
    Membership.objects.filter(user=alice).update(is_sync_organization=False)
    new = Membership.add(system, alice, other_org, Role.USER)
    new.make_synchronizing(system)
    assert Membership.objects.get(user=alice, is_sync_organization=True).organization == other_org


# Email server profiles --------------------------------------------------------------------


def new_profile(org: Organization, **fields: Any) -> EmailServerProfile:
    values = {
        "name": "New",
        "kind": ProfileKind.EXCHANGE_ONPREM,
        "ews_url": "https://mail.example.com/EWS/Exchange.asmx",
        "username": "svc@example.com",
        **fields,
    }
    return EmailServerProfile(organization=org, **values)


def test_a_valid_profile_passes_full_clean(org: Organization) -> None:
    new_profile(org).full_clean()


@pytest.mark.parametrize("kind", [ProfileKind.EXCHANGE_ONPREM, ProfileKind.EXCHANGE_ONLINE])
def test_an_exchange_profile_needs_an_ews_url_or_autodiscover(org: Organization, kind: str) -> None:
    profile = new_profile(org, kind=kind, ews_url="")
    assert errors_of(profile) == {"ews_url": ["Enter the EWS URL, or choose to locate the server by autodiscover."]}
    profile.use_autodiscover = True
    profile.full_clean()


@pytest.mark.parametrize("kind", [ProfileKind.POP3_SMTP, ProfileKind.IMAP_SMTP])
def test_a_pop3_or_imap_profile_needs_its_hosts_and_ports(org: Organization, kind: str) -> None:
    profile = new_profile(org, kind=kind, ews_url="")
    assert errors_of(profile) == {
        name: ["Required for a POP3/IMAP profile."]
        for name in ("incoming_host", "incoming_port", "outgoing_host", "outgoing_port")
    }
    profile.incoming_host, profile.incoming_port = "mail.example.com", 995
    profile.outgoing_host, profile.outgoing_port = "smtp.example.com", 587
    profile.full_clean()


@pytest.mark.parametrize("port", [0, 65536])
def test_ports_are_between_1_and_65535(org: Organization, port: int) -> None:
    profile = new_profile(
        org,
        kind=ProfileKind.POP3_SMTP,
        ews_url="",
        incoming_host="pop.example.com",
        incoming_port=port,
        outgoing_host="smtp.example.com",
        outgoing_port=587,
    )
    assert "incoming_port" in errors_of(profile)


@pytest.mark.parametrize("kind", [ProfileKind.EXCHANGE_ONPREM, ProfileKind.POP3_SMTP, ProfileKind.IMAP_SMTP])
def test_oauth_is_for_exchange_online_only(org: Organization, kind: str) -> None:
    profile = new_profile(
        org,
        kind=kind,
        auth_type=AuthType.OAUTH2,
        oauth_tenant_id="t",
        oauth_client_id="c",
        oauth_client_secret="s",
        incoming_host="in.example.com",
        incoming_port=993,
        outgoing_host="out.example.com",
        outgoing_port=587,
    )
    assert errors_of(profile) == {"auth_type": ["OAuth 2.0 is available for Exchange Online only."]}


def test_oauth_on_exchange_online_needs_tenant_client_and_secret(org: Organization) -> None:
    profile = new_profile(org, kind=ProfileKind.EXCHANGE_ONLINE, auth_type=AuthType.OAUTH2, username="")
    assert errors_of(profile) == {
        "oauth_tenant_id": ["Required for OAuth 2.0."],
        "oauth_client_id": ["Required for OAuth 2.0."],
        "oauth_client_secret": ["Required for OAuth 2.0."],
    }
    profile.oauth_tenant_id, profile.oauth_client_id, profile.oauth_client_secret = "tenant", "client", "secret"
    profile.full_clean()


def test_the_profiles_own_credentials_need_a_user_name(org: Organization) -> None:
    profile = new_profile(org, username="")
    assert errors_of(profile) == {"username": ["Required when the profile's own credentials are used."]}
    profile.credentials_source = CredentialsSource.MAILBOX
    profile.full_clean()


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("polling_interval_minutes", 0, False),
        ("polling_interval_minutes", 1, True),
        ("polling_interval_minutes", 1440, True),
        ("polling_interval_minutes", 1441, False),
        ("max_concurrent_connections", 0, False),
        ("max_concurrent_connections", 1, True),
        ("max_concurrent_connections", 300, True),
        ("max_concurrent_connections", 301, False),
    ],
)
def test_polling_interval_and_connections_are_bounded(org: Organization, field: str, value: int, valid: bool) -> None:
    profile = new_profile(org, **{field: value})
    if valid:
        profile.full_clean()
    else:
        assert list(errors_of(profile)) == [field]


def test_profile_names_are_unique_per_organization(
    org: Organization, other_org: Organization, profile: EmailServerProfile
) -> None:
    assert errors_of(new_profile(org, name=profile.name)) == {
        NON_FIELD_ERRORS: ["A server profile with this name exists already."]
    }
    refused_by_database(new_profile(org, name=profile.name))
    new_profile(other_org, name=profile.name).full_clean()


def test_make_default_leaves_one_default_per_organization(
    org: Organization, other_org: Organization, admin: Any
) -> None:
    first = make_profile(org, "First", is_default=True)
    second = make_profile(org, "Second")
    elsewhere = make_profile(other_org, "Elsewhere", is_default=True)

    fresh(second).make_default(Actor(user=admin))

    defaults = EmailServerProfile.objects.filter(is_default=True)
    assert set(defaults) == {second, elsewhere}
    assert events(first, "server_profile.updated")[0].changes == {"is_default": [True, False]}
    assert events(second, "server_profile.updated")[0].changes == {"is_default": [False, True]}


def test_a_second_default_profile_is_refused_by_the_database(org: Organization) -> None:
    make_profile(org, "First", is_default=True)
    refused_by_database(new_profile(org, name="Second", is_default=True))


def test_mailbox_addresses_lists_the_profiles_mailboxes(profile: EmailServerProfile, alice_mailbox: Mailbox) -> None:
    assert profile.mailbox_addresses() == ["alice@example.com"]


# Moving mailboxes to another server profile ------------------------------------------------


def test_a_mailbox_can_move_to_a_profile_of_its_organization(
    alice_mailbox: Mailbox, org: Organization, other_profile: EmailServerProfile
) -> None:
    assert alice_mailbox.profile_problems(make_profile(org, "Second")) == []
    assert alice_mailbox.profile_problems(other_profile) == ["Choose a server profile of the mailbox's organization."]


def test_profile_problems_leave_the_mailbox_unchanged(
    alice_mailbox: Mailbox, pop3_profile: EmailServerProfile, profile: EmailServerProfile
) -> None:
    alice_mailbox.address = "  Alice@Example.com "  # clean() would normalise it
    [problem] = alice_mailbox.profile_problems(pop3_profile)
    assert "carries email only" in problem
    assert (alice_mailbox.profile, alice_mailbox.address) == (profile, "  Alice@Example.com ")


def test_a_profile_with_each_mailboxs_credentials_needs_the_mailboxs_own(
    alice_mailbox: Mailbox, org: Organization
) -> None:
    own = make_profile(org, "Own credentials", credentials_source=CredentialsSource.MAILBOX, username="")
    assert alice_mailbox.profile_problems(own) == [
        "The profile uses each mailbox's own credentials, and this mailbox has none."
    ]
    alice_mailbox.username, alice_mailbox.password = "alice", "pw"
    assert alice_mailbox.profile_problems(own) == []


def test_change_profile_moves_all_resets_their_tests_and_audits_each(
    org: Organization, alice_mailbox: Mailbox, bob: Any, profile: EmailServerProfile, admin: Any
) -> None:
    bob_mailbox = make_mailbox(org, bob, "bob@example.com", profile, test_overall=Outcome.SUCCESS, enabled_act=True)
    second = make_profile(org, "Second")
    already = make_mailbox(org, None, "q@example.com", second, owner_type=OwnerType.QUEUE, queue_name="Q")

    moved = Mailbox.change_profile([alice_mailbox, bob_mailbox, already], second, Actor(user=admin))

    assert moved == [alice_mailbox, bob_mailbox]
    bob_mailbox = fresh(bob_mailbox)
    assert (bob_mailbox.profile, bob_mailbox.test_overall, bob_mailbox.enabled_act) == (second, Outcome.NOT_RUN, False)
    assert fresh(alice_mailbox).profile == second
    changed = AuditEvent.objects.filter(action="mailbox.updated")
    assert {e.object_id: e.changes["profile"] for e in changed} == {
        str(alice_mailbox.pk): ["Exchange", "Second"],
        str(bob_mailbox.pk): ["Exchange", "Second"],
    }


def test_change_profile_is_all_or_nothing(
    org: Organization, alice_mailbox: Mailbox, bob: Any, profile: EmailServerProfile, pop3_profile: EmailServerProfile
) -> None:
    client_only = make_mailbox(org, bob, "bob@example.com", profile, act_method=ActMethod.CLIENT)

    with pytest.raises(ValidationError) as refused:
        Mailbox.change_profile([client_only, alice_mailbox], pop3_profile, Actor.system())

    [problem] = refused.value.messages
    assert problem.startswith("alice@example.com: A POP3/IMAP profile carries email only")
    assert {fresh(m).profile for m in (client_only, alice_mailbox)} == {profile}
    assert not AuditEvent.objects.filter(action="mailbox.updated").exists()


# Sorting mailboxes by owner ---------------------------------------------------------------


def test_order_by_owner_sorts_users_and_queues_by_the_name_shown(
    org: Organization, alice: Any, bob: Any, profile: EmailServerProfile
) -> None:
    make_mailbox(org, bob, "b@example.com", profile)  # "Bob"
    make_mailbox(org, alice, "z@example.com", profile)  # "Alice"
    make_mailbox(org, None, "q@example.com", profile, owner_type=OwnerType.QUEUE, queue_name="archive")

    names = [m.owner_name for m in Mailbox.objects.order_by_owner()]
    assert names == ["Alice", "archive", "Bob"]
    assert [m.owner_name for m in Mailbox.objects.order_by_owner(descending=True)] == names[::-1]
