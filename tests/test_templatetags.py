"""Histories show actions, fields and values in words, like the audit log."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from audit.log import Actor
from audit.models import AuditEvent
from crmsync_portal.templatetags.portal import field_label
from tests.conftest import client_for


def history(page: str) -> str:
    return page.split(">History</h2>", 1)[1].split("</table>", 1)[0]


def test_a_changed_field_shows_its_verbose_name(admin: Any, alice_mailbox: Any) -> None:
    alice_mailbox.approve(Actor.system())
    event = AuditEvent.objects.for_object(alice_mailbox).get(action="mailbox.approved")
    assert field_label(event, "approval_status") == "email address approval"

    page = client_for(admin).get(reverse("mailbox-detail", args=[alice_mailbox.pk])).content.decode()
    assert 'title="approval_status">email address approval</strong>' in page


def test_an_unknown_field_or_type_shows_the_name_in_words(alice_mailbox: Any) -> None:
    alice_mailbox.approve(Actor.system())
    event = AuditEvent.objects.for_object(alice_mailbox).get()
    assert field_label(event, "no_such_field") == "no such field"
    event.object_type = "gone.model"
    assert field_label(event, "address") == "address"


def test_the_mailbox_history_shows_the_action_and_choices_in_words(admin: Any, alice_mailbox: Any) -> None:
    alice_mailbox.approve(Actor(name="approver", ip="203.0.113.9"))

    html = history(client_for(admin).get(reverse("mailbox-detail", args=[alice_mailbox.pk])).content.decode())
    assert "Email address approved" in html
    assert "Pending approval → Approved" in html
    assert "mailbox.approved" not in html
    assert "approver" in html and "203.0.113.9" in html


def test_the_profile_history_shows_booleans_as_yes_or_no(admin: Any, profile: Any) -> None:
    loaded = type(profile).objects.get(pk=profile.pk)
    loaded.polling_interval_minutes = 9
    loaded.save_audited(Actor(name="admin"))
    loaded.make_default(Actor(name="admin"))

    html = history(client_for(admin).get(reverse("profile-detail", args=[profile.pk])).content.decode())
    assert "Server profile changed" in html
    assert "server_profile.updated" not in html
    assert "No → Yes" in html
    assert "True" not in html and "False" not in html


def test_the_history_scrolls_in_its_own_container(admin: Any, alice_mailbox: Any) -> None:
    alice_mailbox.approve(Actor.system())
    page = client_for(admin).get(reverse("mailbox-detail", args=[alice_mailbox.pk])).content.decode()
    scroller = '<div class="table-responsive" tabindex="0" role="region" aria-labelledby="history-heading">'
    assert f'{scroller}\n<table class="table table-sm history">' in page
