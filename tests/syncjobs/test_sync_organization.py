"""One synchronizing organization (DOMAIN.md, the one-of rules): only it syncs with the user's mailbox."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from mailboxes.models import Channel, Mailbox, Membership, Organization, Role
from syncjobs.scheduler import due_mailboxes
from syncjobs.testenable import sync_refusal
from tests.conftest import make_mailbox, make_profile
from tests.syncjobs.conftest import ready

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs(org: Organization, other_org: Organization, alice: Any, system: Any) -> Mailbox:
    """Alice belongs to Acme (her synchronizing organization) and to Globex, which has her mailbox too."""
    Membership.add(system, alice, other_org, Role.USER)
    profile = make_profile(other_org, "Globex Exchange", ews_url="https://mail.globex.example/EWS/Exchange.asmx")
    return ready(make_mailbox(other_org, alice, "alice@globex.example", profile))


def test_a_mailbox_of_another_organization_than_the_synchronizing_one_does_not_sync(
    two_orgs: Mailbox, org: Organization, alice: Any
) -> None:
    assert Membership.objects.get(user=alice, organization=org).is_sync_organization
    assert not two_orgs.can_sync(Channel.ACT)
    assert "is not the synchronizing organization of" in sync_refusal(two_orgs, Channel.ACT)
    assert two_orgs not in due_mailboxes(timezone.now())


def test_making_it_the_synchronizing_organization_lets_it_sync(
    two_orgs: Mailbox, other_org: Organization, alice: Any, system: Any
) -> None:
    Membership.objects.get(user=alice, organization=other_org).make_synchronizing(system)
    assert two_orgs.can_sync(Channel.ACT)
    assert sync_refusal(two_orgs, Channel.ACT) == ""
    assert list(due_mailboxes(timezone.now())) == [two_orgs]
