"""Changed fields are shown by their human names in histories and the audit log."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from audit.log import Actor
from audit.models import AuditEvent
from crmsync_portal.templatetags.portal import field_label
from tests.conftest import client_for


def test_a_changed_field_shows_its_verbose_name(admin: Any, alice_mailbox: Any) -> None:
    alice_mailbox.approve(Actor.system())
    event = AuditEvent.objects.for_object(alice_mailbox).get(action="mailbox.approved")
    assert field_label(event, "approval_status") == "email address approval"

    page = client_for(admin).get(reverse("mailbox-detail", args=[alice_mailbox.pk])).content.decode()
    assert 'title="approval_status">email address approval</strong>' in page


def test_an_unknown_field_or_type_shows_the_raw_name(alice_mailbox: Any) -> None:
    alice_mailbox.approve(Actor.system())
    event = AuditEvent.objects.for_object(alice_mailbox).get()
    assert field_label(event, "no_such_field") == "no_such_field"
    event.object_type = "gone.model"
    assert field_label(event, "address") == "address"
