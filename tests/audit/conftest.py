"""The audit review's test data: events of two organizations, as the portal records them."""

from __future__ import annotations

from typing import Any

import pytest

from audit.log import Actor, record
from audit.models import AuditEvent
from mailboxes.models import Mailbox, Organization


@pytest.fixture
def events(org: Organization, other_org: Organization, alice_mailbox: Mailbox, other_mailbox: Mailbox) -> None:
    """Acme: alice's mailbox approved and edited; Globex: gina's approved; one event of no organization."""
    acme_admin = Actor(name="acme-admin", ip="192.0.2.1")
    alice_mailbox.approve(acme_admin)
    alice_mailbox = Mailbox.objects.get(pk=alice_mailbox.pk)
    alice_mailbox.password = "never-shown-pw"
    alice_mailbox.save_audited(acme_admin)
    other_mailbox.approve(Actor(name="globex-admin"))
    record(Actor.system("maintenance"), "system.keys_rotated", org)  # no organization recorded


@pytest.fixture
def bobs_sync(events: None, bob: Any, org: Organization, alice_mailbox: Mailbox) -> AuditEvent:
    """bob asks for a sync of alice's mailbox (his membership is an event of its own)."""
    return record(
        Actor(user=bob, name="bob"),
        "mailbox.sync_requested",
        alice_mailbox,
        changes={"channel": ["", "act"]},
        organization=org,
    )


def add_event(org: Organization | None, action: str = "mailbox.updated", **fields: Any) -> AuditEvent:
    """An event written as it happened at ``time`` (the recording functions use now)."""
    values = {
        "actor_name": "acme-admin",
        "object_type": "mailboxes.organization",
        "object_id": str(org.pk) if org else "0",
        "object_repr": str(org),
        "organization_id": org.pk if org else None,
        "organization_name": str(org or ""),
        **fields,
    }
    return AuditEvent.objects.create(action=action, **values)
