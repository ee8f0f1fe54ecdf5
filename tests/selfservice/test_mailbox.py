"""My mailbox: status in words, set up, change the address, own credentials, Test & Enable."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from audit.models import AuditEvent
from mailboxes.models import ApprovalStatus, CredentialsSource, EmailServerProfile, Mailbox, TestStatus
from syncjobs.models import TestRun, TestRunStatus
from tests.conftest import client_for, make_mailbox, make_profile

pytestmark = pytest.mark.django_db

PASSWORD = "alice-Mailbox-pw-9"


def events(action: str) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(action=action).values_list("actor_name", "object_id"))


def messages_of(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def approved_and_tested(mailbox: Mailbox) -> Mailbox:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED,
        test_incoming=TestStatus.SUCCESS,
        test_outgoing=TestStatus.SUCCESS,
        test_act=TestStatus.SUCCESS,
        test_overall=TestStatus.SUCCESS,
        enabled_incoming=True,
        enabled_outgoing=True,
        enabled_act=True,
    )
    mailbox.refresh_from_db()
    return mailbox


def form_data(mailbox: Mailbox, **changes: Any) -> dict[str, Any]:
    data = {
        "address": mailbox.address,
        "incoming_method": mailbox.incoming_method,
        "outgoing_method": mailbox.outgoing_method,
        "act_method": mailbox.act_method,
    }
    return {**data, **changes}


# The page


def test_it_shows_the_status_of_each_channel_in_words(alice_client: Client, alice_mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(last_error="The server refused the password.")

    response = alice_client.get("/me/mailbox/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "alice@example.com" in page
    assert "Pending approval" in page
    assert "An administrator has to approve this address before your mailbox syncs." in page
    assert "Wait until an administrator approves your address." in page  # what to do, per channel
    assert "The server refused the password." in page
    assert "Run Test &amp; Enable again once the cause is corrected" in page
    assert 'id="selfservice-nav"' in page and 'href="/clients/"' in page


def test_it_says_what_to_do_once_approved_but_not_tested(alice_client: Client, alice_mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(approval_status=ApprovalStatus.APPROVED)

    page = alice_client.get("/me/mailbox/").content.decode()

    assert "Test &amp; Enable has not passed" in page
    assert "Run Test &amp; Enable." in page


def test_it_offers_set_up_with_the_organizations_only_profile(alice_client: Client, profile: Any) -> None:
    page = alice_client.get("/me/mailbox/").content.decode()

    assert "You have no mailbox yet." in page
    assert "/me/mailbox/new/" in page
    assert "Exchange" in page


def test_without_a_default_profile_it_says_to_ask_an_administrator(alice_client: Client, org: Any) -> None:
    make_profile(org, "One")
    make_profile(org, "Two")

    page = alice_client.get("/me/mailbox/").content.decode()

    assert 'id="ask-admin"' in page
    assert "/me/mailbox/new/" not in page
    response = alice_client.get("/me/mailbox/new/", follow=True)
    assert "ask an administrator" in messages_of(response)
    assert not Mailbox.objects.filter(user__username="alice").exists()


def test_set_up_uses_the_default_profile_and_goes_to_approval(alice_client: Client, org: Any, alice: Any) -> None:
    make_profile(org, "Other")
    default = make_profile(org, "Default", is_default=True)

    response = alice_client.post("/me/mailbox/new/", form_data(Mailbox(), address=" Alice@Example.com "), follow=True)

    mailbox = Mailbox.objects.get(user=alice)
    assert (mailbox.address, mailbox.profile, mailbox.organization) == ("alice@example.com", default, org)
    assert mailbox.approval_status == ApprovalStatus.PENDING
    assert "syncs once an administrator has approved" in messages_of(response)
    assert events("mailbox.created") == [("alice", str(mailbox.pk))]


def test_set_up_refuses_act_through_a_pop3_profile(alice_client: Client, pop3_only: EmailServerProfile) -> None:
    form_page = alice_client.get("/me/mailbox/new/").content.decode()
    assert "carries email only" in form_page

    response = alice_client.post("/me/mailbox/new/", form_data(Mailbox(), address="alice@example.com"))

    assert response.status_code == 200
    assert "A POP3/IMAP profile carries email only" in response.content.decode()
    assert not Mailbox.objects.exists()


def test_set_up_with_a_mailbox_already_goes_to_the_edit_page(alice_client: Client, alice_mailbox: Mailbox) -> None:
    response = alice_client.get("/me/mailbox/new/")

    assert (response.status_code, response.url) == (302, "/me/mailbox/edit/")


# Changing the address


def test_a_changed_address_goes_back_to_approval_and_says_so(alice_client: Client, alice_mailbox: Mailbox) -> None:
    approved_and_tested(alice_mailbox)

    response = alice_client.post(
        "/me/mailbox/edit/", form_data(alice_mailbox, address="a.smith@example.com"), follow=True
    )

    alice_mailbox.refresh_from_db()
    assert alice_mailbox.address == "a.smith@example.com"
    assert alice_mailbox.approval_status == ApprovalStatus.PENDING
    assert (alice_mailbox.test_overall, alice_mailbox.enabled_act) == (TestStatus.NOT_RUN, False)
    text = messages_of(response)
    assert "syncs once an administrator has approved this one" in text
    assert "run Test & Enable again" in text
    event = AuditEvent.objects.get(action="mailbox.updated")
    assert event.actor_name == "alice"
    assert event.changes["address"] == ["alice@example.com", "a.smith@example.com"]
    assert event.changes["approval_status"] == ["approved", "pending"]


def test_a_changed_address_is_approved_where_the_organization_requires_no_approval(
    alice_client: Client, alice_mailbox: Mailbox, org: Any, alice: Any
) -> None:
    org.require_approval_user_mailboxes = False
    org.save()
    alice.email = "a.smith@example.com"
    alice.save()

    response = alice_client.post(
        "/me/mailbox/edit/", form_data(alice_mailbox, address="a.smith@example.com"), follow=True
    )

    alice_mailbox.refresh_from_db()
    assert alice_mailbox.approval_status == ApprovalStatus.APPROVED
    assert "approved" not in messages_of(response)


def test_without_approval_only_the_users_own_address_is_allowed(
    alice_client: Client, alice_mailbox: Mailbox, org: Any
) -> None:
    # The service account reaches every mailbox of the server: an unapproved address would sync someone's mail.
    org.require_approval_user_mailboxes = False
    org.save()

    response = alice_client.post("/me/mailbox/edit/", form_data(alice_mailbox, address="ceo@example.com"))

    assert "your mailbox can use only your own address, alice@example.com" in response.content.decode()
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.address == "alice@example.com"


def test_without_approval_own_credentials_allow_any_address(
    alice_client: Client, own_credentials: Mailbox, org: Any
) -> None:
    org.require_approval_user_mailboxes = False
    org.save()
    data = form_data(own_credentials, address="alice.private@example.com", username="alice", password=PASSWORD)

    assert alice_client.post("/me/mailbox/edit/", data).status_code == 302
    own_credentials.refresh_from_db()
    assert own_credentials.address == "alice.private@example.com"


def test_it_refuses_the_address_of_another_mailbox(
    alice_client: Client, alice_mailbox: Mailbox, bob_mailbox: Mailbox
) -> None:
    response = alice_client.post("/me/mailbox/edit/", form_data(alice_mailbox, address="BOB@example.com"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "This address belongs to another mailbox. Ask an administrator to move it." in page
    assert "Bob" not in page.split('id="selfservice-nav"')[1]  # whose it is stays unsaid
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.address == "alice@example.com"


def test_methods_are_checked_by_the_mailbox_rules(alice_client: Client, alice_mailbox: Mailbox) -> None:
    data = form_data(alice_mailbox, incoming_method="forward_mailbox", outgoing_method="server_side")

    response = alice_client.post("/me/mailbox/edit/", data)

    assert "A forward mailbox sends no email: choose None." in response.content.decode()


# Own credentials


@pytest.fixture
def own_credentials(alice_mailbox: Mailbox) -> Mailbox:
    profile = alice_mailbox.profile
    profile.credentials_source = CredentialsSource.MAILBOX
    profile.username = ""
    profile.save()
    alice_mailbox.refresh_from_db()
    return alice_mailbox


def test_own_credentials_are_stored_encrypted_and_never_shown(alice_client: Client, own_credentials: Mailbox) -> None:
    data = form_data(own_credentials, username="alice", password=PASSWORD)

    alice_client.post("/me/mailbox/edit/", data)

    own_credentials.refresh_from_db()
    assert own_credentials.username == "alice"
    assert own_credentials.password == PASSWORD
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM mailboxes_mailbox WHERE id = %s", [own_credentials.pk.hex])
        stored = cursor.fetchone()[0]
    assert stored and PASSWORD not in stored
    for url in ("/me/mailbox/", "/me/mailbox/edit/", "/me/mailbox/status/"):
        assert PASSWORD not in alice_client.get(url).content.decode(), url
    assert PASSWORD not in str(AuditEvent.objects.get(action="mailbox.updated").changes)


def test_an_empty_password_keeps_the_stored_one(alice_client: Client, own_credentials: Mailbox) -> None:
    alice_client.post("/me/mailbox/edit/", form_data(own_credentials, username="alice", password=PASSWORD))

    response = alice_client.post("/me/mailbox/edit/", form_data(own_credentials, username="alice", password=""))

    assert response.status_code == 302
    own_credentials.refresh_from_db()
    assert own_credentials.password == PASSWORD


def test_own_credentials_are_required_when_the_profile_asks(alice_client: Client, own_credentials: Mailbox) -> None:
    response = alice_client.post("/me/mailbox/edit/", form_data(own_credentials))

    assert "Your server profile uses each mailbox&#x27;s own credentials: enter them." in response.content.decode()


def test_a_typed_password_is_not_shown_back_after_an_error(alice_client: Client, own_credentials: Mailbox) -> None:
    data = form_data(own_credentials, username="alice", password=PASSWORD, address="not an address")

    response = alice_client.post("/me/mailbox/edit/", data)

    assert response.status_code == 200
    assert PASSWORD not in response.content.decode()


def test_profile_credentials_are_not_asked_for(alice_client: Client, alice_mailbox: Mailbox) -> None:
    page = alice_client.get("/me/mailbox/edit/").content.decode()

    assert 'name="password"' not in page
    assert "s3cret-profile-pw" not in page


# Test & Enable


def test_test_and_enable_queues_a_test_of_the_own_mailbox(alice_client: Client, alice_mailbox: Mailbox) -> None:
    response = alice_client.post("/me/mailbox/test/")

    assert (response.status_code, response.url) == (302, "/me/mailbox/")
    test = TestRun.objects.get(mailbox=alice_mailbox)
    assert (test.status, test.requested_by.username) == (TestRunStatus.QUEUED, "alice")
    assert events("mailbox.test_requested") == [("alice", str(alice_mailbox.pk))]


def test_the_status_polls_while_a_test_is_queued(alice_client: Client, alice_mailbox: Mailbox) -> None:
    TestRun.objects.create(mailbox=alice_mailbox)

    page = alice_client.get("/me/mailbox/").content.decode()
    fragment = alice_client.get("/me/mailbox/status/").content.decode()

    for html in (page, fragment):
        assert 'hx-get="/me/mailbox/status/"' in html
        assert "Test & Enable is running…" in html
    assert "<html" not in fragment


def test_the_status_does_not_poll_when_nothing_runs(alice_client: Client, alice_mailbox: Mailbox) -> None:
    assert "hx-get" not in alice_client.get("/me/mailbox/status/").content.decode()


# Access


@pytest.mark.parametrize("url", ["/me/mailbox/test/"])
def test_actions_refuse_get(alice_client: Client, alice_mailbox: Mailbox, url: str) -> None:
    assert alice_client.get(url).status_code == 405


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", "/me/mailbox/edit/"), ("get", "/me/mailbox/status/"), ("post", "/me/mailbox/test/")],
)
def test_without_a_mailbox_there_is_nothing_to_change(
    bob_client: Client, alice_mailbox: Mailbox, method: str, url: str
) -> None:
    assert getattr(bob_client, method)(url).status_code == 404
    assert not TestRun.objects.exists()


def test_someone_elses_mailbox_is_never_shown(bob_client: Client, alice_mailbox: Mailbox) -> None:
    page = bob_client.get("/me/mailbox/").content.decode()

    assert "alice@example.com" not in page
    assert "You have no mailbox yet." in page


def test_a_queue_mailbox_is_not_the_users(alice_client: Client, org: Any, profile: Any) -> None:
    make_mailbox(org, None, "sales@example.com", profile, owner_type="queue", queue_name="Sales")

    assert "sales@example.com" not in alice_client.get("/me/mailbox/").content.decode()


def test_someone_without_an_organization_is_refused(charlie: Any) -> None:
    assert client_for(charlie).get("/me/mailbox/").status_code == 403


def test_signed_out_visitors_go_to_the_sign_in_page(client: Client) -> None:
    response = client.get("/me/mailbox/")

    assert response.status_code == 302
    assert response.url.startswith("/login/")
