"""The self-service pages' fixtures: the personas' clients, records, filters and conflicts.

The browser fixtures (browser, page) come from tests/conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from crm.models import Contact, SyncFilter
from mailboxes.models import Mailbox, Membership, Organization, Role
from tests.conftest import client_for, make_mailbox, make_profile


@pytest.fixture
def alice_client(alice: Any) -> Client:
    return client_for(alice)


@pytest.fixture
def bob_client(bob: Any) -> Client:
    return client_for(bob)


@pytest.fixture
def admin_client(admin: Any) -> Client:
    return client_for(admin)


@pytest.fixture
def contacts(org: Organization, alice: Any, bob: Any) -> dict[str, Contact]:
    """Alice's contacts (one inactive) and one of Bob's, whose name Alice's rules would match too."""
    return {
        "ann": Contact.objects.create(organization=org, owner=alice, first_name="Ann", last_name="Smith"),
        "sam": Contact.objects.create(organization=org, owner=alice, first_name="Sam", last_name="Smithers"),
        "old": Contact.objects.create(
            organization=org, owner=alice, first_name="Old", last_name="Smithson", is_active=False
        ),
        "zed": Contact.objects.create(organization=org, owner=alice, first_name="Zed", last_name="Jones"),
        "bobs": Contact.objects.create(organization=org, owner=bob, first_name="Bo", last_name="Smith"),
    }


@pytest.fixture
def bob_filter(org: Organization, bob: Any) -> SyncFilter:
    return SyncFilter.objects.get(user=bob, organization=org, record_type="contact")


@pytest.fixture
def bob_mailbox(org: Organization, bob: Any, profile: Any) -> Mailbox:
    return make_mailbox(org, bob, "bob@example.com", profile)


@pytest.fixture
def second_org(alice: Any, system: Any) -> Organization:
    """A second organization of Alice's (not her synchronizing one)."""
    organization = Organization.objects.create(name="Initech")
    Membership.add(system, alice, organization, Role.USER)
    return organization


@pytest.fixture
def pop3_only(org: Organization) -> Any:
    """The organization's only server profile, a POP3 one."""
    return make_profile(
        org,
        "POP3",
        kind="pop3_smtp",
        ews_url="",
        incoming_host="pop.example.com",
        incoming_port=995,
        outgoing_host="smtp.example.com",
        outgoing_port=587,
    )
