"""Bulk "Change server profile": from the list or the profile-in-use page, confirmed, audited per mailbox."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client

from audit.models import AuditEvent
from mailboxes.models import EmailServerProfile, Mailbox, Membership, Organization, Role, TestStatus
from tests.conftest import client_for, make_mailbox, make_profile

pytestmark = pytest.mark.django_db

URL = "/mailboxes/change-profile/"


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def as_tested(mailbox: Mailbox) -> Mailbox:
    """The mailbox as after a passed Test & Enable."""
    Mailbox.objects.filter(pk=mailbox.pk).update(
        test_incoming=TestStatus.SUCCESS,
        test_outgoing=TestStatus.SUCCESS,
        test_act=TestStatus.SUCCESS,
        test_overall=TestStatus.SUCCESS,
        enabled_incoming=True,
        enabled_outgoing=True,
        enabled_act=True,
    )
    return Mailbox.objects.get(pk=mailbox.pk)


@pytest.fixture
def admin_client(admin: Any) -> Client:
    return client_for(admin)


@pytest.fixture
def bob_mailbox(org: Organization, bob: Any, profile: EmailServerProfile) -> Mailbox:
    return make_mailbox(org, bob, "bob@example.com", profile)


@pytest.fixture
def new_profile(org: Organization) -> EmailServerProfile:
    return make_profile(org, "Exchange Online")


def ids(*mailboxes: Mailbox) -> list[str]:
    return [str(m.pk) for m in mailboxes]


def profile_events() -> Any:
    return AuditEvent.objects.filter(action="mailbox.updated")


def test_the_list_button_goes_on_to_the_confirmation_page_and_changes_nothing(
    admin_client: Client, alice_mailbox: Mailbox, bob_mailbox: Mailbox
) -> None:
    response = admin_client.post(URL, {"mailbox": ids(alice_mailbox, bob_mailbox), "next": "/mailboxes/?q=example"})

    assert response.status_code == 302
    path, query = response.url.split("?")
    assert path == URL
    assert sorted(parse_qsl(query)) == sorted(
        [("mailbox", str(alice_mailbox.pk)), ("mailbox", str(bob_mailbox.pk)), ("next", "/mailboxes/?q=example")]
    )
    assert not profile_events().exists()


def test_get_shows_the_confirmation_with_the_organizations_other_profiles(
    admin_client: Client,
    alice_mailbox: Mailbox,
    bob_mailbox: Mailbox,
    new_profile: EmailServerProfile,
    other_profile: EmailServerProfile,
) -> None:
    response = admin_client.get(URL, {"mailbox": ids(alice_mailbox, bob_mailbox), "next": "/mailboxes/"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Change the server profile of 2 mailboxes" in html
    assert "alice@example.com" in html and "bob@example.com" in html
    assert list(response.context["form"].fields["new_profile"].queryset) == [new_profile]  # not Globex's, not theirs
    assert '<form method="post"' in html
    assert f'<input type="hidden" name="mailbox" value="{alice_mailbox.pk}">' in html
    assert '<a class="btn btn-link" href="/mailboxes/">Cancel</a>' in html
    assert not profile_events().exists()


def test_it_changes_the_profile_resets_the_tests_and_audits_each_mailbox(
    admin_client: Client, alice_mailbox: Mailbox, bob_mailbox: Mailbox, new_profile: EmailServerProfile, admin: Any
) -> None:
    as_tested(alice_mailbox)
    as_tested(bob_mailbox)
    data = {"mailbox": ids(alice_mailbox, bob_mailbox), "new_profile": new_profile.pk, "next": "/mailboxes/?q=x"}

    response = admin_client.post(URL, data, follow=True, REMOTE_ADDR="198.51.100.7")

    assert response.redirect_chain == [("/mailboxes/?q=x", 302)]
    assert messages_of(response) == [
        "Moved 2 mailboxes to the server profile “Exchange Online”: alice@example.com, bob@example.com. "
        "Their tests were reset: run Test & Enable again."
    ]
    for mailbox in (alice_mailbox, bob_mailbox):
        mailbox.refresh_from_db()
        assert mailbox.profile == new_profile
        assert (mailbox.test_incoming, mailbox.test_overall, mailbox.enabled_act) == ("not_run", "not_run", False)
        assert mailbox.approval_status == "pending"  # the address did not change
    events = profile_events()
    assert sorted(events.values_list("object_id", flat=True)) == sorted(ids(alice_mailbox, bob_mailbox))
    for event in events:
        assert event.changes["profile"] == ["Exchange", "Exchange Online"]
        assert event.changes["enabled_act"] == [True, False]
        assert (event.actor, event.ip) == (admin, "198.51.100.7")


def test_without_next_it_shows_the_list_of_the_new_profile(
    admin_client: Client, alice_mailbox: Mailbox, new_profile: EmailServerProfile
) -> None:
    response = admin_client.post(URL, {"mailbox": ids(alice_mailbox), "new_profile": new_profile.pk})
    assert response.url == f"/mailboxes/?profile={new_profile.pk}"


def test_it_refuses_a_profile_of_another_organization(
    admin_client: Client, alice_mailbox: Mailbox, other_profile: EmailServerProfile
) -> None:
    response = admin_client.post(URL, {"mailbox": ids(alice_mailbox), "new_profile": other_profile.pk})

    assert response.status_code == 200
    assert "new_profile" in response.context["form"].errors
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.profile.name == "Exchange"
    assert not profile_events().exists()


def test_it_refuses_a_profile_of_another_of_the_admins_organizations(
    admin: Any, alice_mailbox: Mailbox, other_org: Organization, other_profile: EmailServerProfile
) -> None:
    """Even an organization the admin administers too: a mailbox stays with its organization's profiles."""
    Membership.objects.create(user=admin, organization=other_org, role=Role.ADMINISTRATOR)
    response = client_for(admin).post(URL, {"mailbox": ids(alice_mailbox), "new_profile": other_profile.pk})

    assert response.status_code == 200
    assert "new_profile" in response.context["form"].errors
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.profile.name == "Exchange"


def test_mailboxes_of_several_organizations_are_refused(
    admin: Any, alice_mailbox: Mailbox, other_org: Organization, other_mailbox: Mailbox
) -> None:
    Membership.objects.create(user=admin, organization=other_org, role=Role.ADMINISTRATOR)
    response = client_for(admin).get(URL, {"mailbox": ids(alice_mailbox, other_mailbox)}, follow=True)
    assert response.redirect_chain == [("/mailboxes/", 302)]
    assert messages_of(response) == ["The selected mailboxes belong to several organizations: select those of one."]


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_mailbox_of_another_organization_is_404_and_nothing_changes(
    admin_client: Client, alice_mailbox: Mailbox, other_mailbox: Mailbox, new_profile: EmailServerProfile, method: str
) -> None:
    data = {"mailbox": ids(alice_mailbox, other_mailbox), "new_profile": new_profile.pk}
    assert getattr(admin_client, method)(URL, data).status_code == 404
    alice_mailbox.refresh_from_db()
    other_mailbox.refresh_from_db()
    assert (alice_mailbox.profile.name, other_mailbox.profile.name) == ("Exchange", "Globex Exchange")
    assert not profile_events().exists()


@pytest.mark.parametrize(
    ("persona", "status"), [("approver", 403), ("auditor", 403), ("alice", 403), ("outsider", 404)]
)
def test_other_roles_are_refused_and_others_mailboxes_hidden(
    request: pytest.FixtureRequest, alice_mailbox: Mailbox, new_profile: EmailServerProfile, persona: str, status: int
) -> None:
    client = client_for(request.getfixturevalue(persona))
    data = {"mailbox": ids(alice_mailbox), "new_profile": new_profile.pk}
    assert client.post(URL, data).status_code == status
    assert client.get(URL, {"mailbox": ids(alice_mailbox)}).status_code == status
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.profile.name == "Exchange"


def test_nothing_selected_says_so(admin_client: Client) -> None:
    response = admin_client.post(URL, follow=True)
    assert response.redirect_chain == [("/mailboxes/", 302)]
    assert messages_of(response) == ["Select at least one mailbox."]


def test_a_profile_that_cannot_carry_a_mailbox_refuses_the_whole_change(
    admin_client: Client, alice_mailbox: Mailbox, org: Organization, profile: EmailServerProfile, pop3_profile: Any
) -> None:
    """POP3 carries no ACT: alice's server-side ACT cannot move there, so bob's mailbox stays too."""
    queue = make_mailbox(
        org, None, "desk@example.com", profile, owner_type="queue", queue_name="Desk", act_method="none"
    )
    data = {"mailbox": ids(alice_mailbox, queue), "new_profile": pop3_profile.pk}

    response = admin_client.post(URL, data)

    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Nothing was changed. alice@example.com: A POP3/IMAP profile carries email only")
    assert "desk@example.com" not in message
    assert Mailbox.objects.filter(profile=pop3_profile).count() == 0
    assert not profile_events().exists()


def test_a_profile_with_mailbox_credentials_needs_them(
    admin_client: Client, alice_mailbox: Mailbox, org: Organization
) -> None:
    own = make_profile(org, "Per-mailbox", credentials_source="mailbox", username="", password="")
    response = admin_client.post(URL, {"mailbox": ids(alice_mailbox), "new_profile": own.pk})
    [message] = messages_of(response)
    assert "uses each mailbox's own credentials, and this mailbox has none" in message
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.profile.name == "Exchange"


def test_all_matching_applies_to_every_mailbox_of_the_filter_beyond_the_page(
    admin_client: Client,
    org: Organization,
    profile: EmailServerProfile,
    new_profile: EmailServerProfile,
    settings: Any,
) -> None:
    settings.PAGE_SIZE = 2
    others = make_profile(org, "Third")
    mine = [
        make_mailbox(org, None, f"q{i}@example.com", profile, owner_type="queue", queue_name=f"Q{i}") for i in range(5)
    ]
    untouched = make_mailbox(org, None, "keep@example.com", others, owner_type="queue", queue_name="Keep")
    list_page = admin_client.get("/mailboxes/", {"profile": profile.pk})
    assert len(list_page.context["page"].object_list) == 2
    link = re.search(r'href="(/mailboxes/change-profile/\?[^"]+)" id="change-profile-all"', list_page.content.decode())
    assert link
    confirm = admin_client.get(link.group(1).replace("&amp;", "&"))

    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Change the server profile of 5 mailboxes" in html
    assert "This applies to all 5 mailboxes matching the list's filter, on every page." in html
    assert '<input type="hidden" name="all_matching" value="1">' in html
    assert f'<input type="hidden" name="profile" value="{profile.pk}">' in html

    data = {"all_matching": "1", "profile": profile.pk, "new_profile": new_profile.pk}
    admin_client.post(URL, data)

    assert Mailbox.objects.filter(profile=new_profile).count() == len(mine)
    untouched.refresh_from_db()
    assert untouched.profile == others
    assert profile_events().count() == 5


def test_all_matching_with_a_filter_that_is_not_valid_is_404(
    admin_client: Client, alice_mailbox: Mailbox, other_profile: EmailServerProfile, new_profile: EmailServerProfile
) -> None:
    """The list would ignore such a filter and show everything: the action must not apply to everything."""
    data = {"all_matching": "1", "profile": other_profile.pk, "new_profile": new_profile.pk}
    assert admin_client.post(URL, data).status_code == 404
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.profile.name == "Exchange"


# The profile in use: the way forward


def test_the_profile_in_use_page_links_to_the_change_and_comes_back(
    admin_client: Client, profile: EmailServerProfile, alice_mailbox: Mailbox, new_profile: EmailServerProfile
) -> None:
    delete_url = f"/profiles/{profile.pk}/delete/"
    page = admin_client.get(delete_url).content.decode()
    main = page.split("<main", 1)[1].split("</main>", 1)[0]
    assert "<form" not in main
    assert f'href="/mailboxes/?profile={profile.pk}"' in main
    assert f'href="/profiles/{profile.pk}/"' in main  # back
    link = re.search(r'href="(/mailboxes/change-profile/\?[^"]+)" id="move-all"', main)
    assert link
    query = dict(parse_qsl(urlsplit(link.group(1).replace("&amp;", "&")).query))
    assert query == {"all_matching": "1", "profile": str(profile.pk), "next": delete_url}

    confirm = admin_client.get(link.group(1).replace("&amp;", "&"))
    assert "alice@example.com" in confirm.content.decode()

    response = admin_client.post(URL, {**query, "new_profile": new_profile.pk}, follow=True)

    assert response.redirect_chain == [(delete_url, 302)]
    assert response.context["in_use"] == []
    assert 'method="post"' in response.content.decode()
