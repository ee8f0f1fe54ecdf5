"""Server profile pages: list, create, the profile's page, edit, delete (STYLE.md 10)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.log import MASK, MASK_CHANGED
from audit.models import AuditEvent
from mailboxes.models import EmailServerProfile, Organization, ProfileKind
from tests.conftest import client_for, make_mailbox, make_profile

pytestmark = pytest.mark.django_db


def profile_data(org: Organization, **overrides: Any) -> dict[str, Any]:
    """A valid POST for a new Exchange on-premises profile; False/None drop the field (unticked box)."""
    data: dict[str, Any] = {
        "organization": org.pk,
        "name": "Main Exchange",
        "kind": ProfileKind.EXCHANGE_ONPREM,
        "ews_url": "https://exchange.acme.example/EWS/Exchange.asmx",
        "auth_type": "basic",
        "credentials_source": "profile",
        "username": "svc-sync@acme.example",
        "password": "first-Secret-1",
        "incoming_tls": "on",
        "outgoing_tls": "on",
        "polling_interval_minutes": 5,
        "max_concurrent_connections": 10,
        "timeout_seconds": 120,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None and v is not False}


def edit_data(profile: EmailServerProfile, **overrides: Any) -> dict[str, Any]:
    """The POST of the edit page as rendered for ``profile`` (password left empty)."""
    data = profile_data(
        profile.organization,
        name=profile.name,
        kind=profile.kind,
        ews_url=profile.ews_url,
        username=profile.username,
        password="",
        is_default="on" if profile.is_default else None,
    )
    data.pop("organization")
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None and v is not False}


@pytest.fixture
def admin_client(admin: Any) -> Client:
    return client_for(admin)


# List


def test_list_shows_own_organizations_profiles_only(admin_client: Client, profile: Any, other_profile: Any) -> None:
    response = admin_client.get("/profiles/")
    assert response.status_code == 200
    assert list(response.context["profiles"]) == [profile]
    assert profile.name in response.content.decode()
    assert other_profile.name not in response.content.decode()


def test_list_counts_each_profiles_mailboxes(admin_client: Client, profile: Any, alice_mailbox: Any) -> None:
    response = admin_client.get("/profiles/")
    assert [p.n_mailboxes for p in response.context["profiles"]] == [1]


# Create


def test_create_saves_audits_and_redirects(admin_client: Client, org: Organization, admin: Any) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org), REMOTE_ADDR="192.0.2.7")

    profile = EmailServerProfile.objects.get(name="Main Exchange")
    assert response.status_code == 302
    assert response.url == f"/profiles/{profile.pk}/"
    assert profile.organization == org
    assert profile.password == "first-Secret-1"
    event = AuditEvent.objects.get(action="server_profile.created")
    assert event.object_id == str(profile.pk)
    assert event.actor == admin
    assert event.ip == "192.0.2.7"
    assert event.organization_id == org.pk
    assert event.changes["password"] == ["", MASK_CHANGED]
    assert "first-Secret-1" not in str(event.changes)


def test_create_form_preselects_the_only_organization(admin_client: Client, org: Organization) -> None:
    response = admin_client.get("/profiles/new/")
    assert response.status_code == 200
    assert response.context["form"]["organization"].initial == org.pk


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"polling_interval_minutes": 0}, "polling_interval_minutes"),
        ({"polling_interval_minutes": 1441}, "polling_interval_minutes"),
        ({"max_concurrent_connections": 301}, "max_concurrent_connections"),
        ({"timeout_seconds": 4}, "timeout_seconds"),
        ({"kind": ProfileKind.POP3_SMTP, "ews_url": ""}, "incoming_host"),
        ({"kind": ProfileKind.POP3_SMTP, "ews_url": ""}, "outgoing_port"),
        ({"auth_type": "oauth2", "oauth_tenant_id": "t", "oauth_client_id": "c"}, "auth_type"),
        ({"ews_url": "", "use_autodiscover": None}, "ews_url"),
        ({"username": ""}, "username"),
        ({"name": "   "}, "name"),
    ],
    ids=[
        "polling-0",
        "polling-1441",
        "connections-301",
        "timeout-4",
        "pop3-without-incoming-host",
        "pop3-without-outgoing-port",
        "oauth-on-premises",
        "exchange-without-url-or-autodiscover",
        "profile-credentials-without-username",
        "blank-name",
    ],
)
def test_create_rejects_invalid_values(
    admin_client: Client, org: Organization, overrides: dict[str, Any], field: str
) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org, **overrides))

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not EmailServerProfile.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="server_profile.").exists()


def test_create_accepts_the_limits(admin_client: Client, org: Organization) -> None:
    data = profile_data(org, polling_interval_minutes=1440, max_concurrent_connections=300)
    response = admin_client.post("/profiles/new/", data)
    assert response.status_code == 302
    profile = EmailServerProfile.objects.get()
    assert (profile.polling_interval_minutes, profile.max_concurrent_connections) == (1440, 300)


def test_create_rejects_duplicate_name_in_the_organization(
    admin_client: Client, org: Organization, profile: Any
) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org, name=profile.name))
    assert response.status_code == 200
    assert response.context["form"].errors
    assert EmailServerProfile.objects.count() == 1


def test_create_rejects_another_organizations_id(admin_client: Client, other_org: Organization, outsider: Any) -> None:
    response = admin_client.post("/profiles/new/", profile_data(other_org))

    assert response.status_code == 200
    assert "organization" in response.context["form"].errors
    assert not EmailServerProfile.objects.exists()


# The profile's page: read only


def test_the_profile_page_shows_the_settings_in_words(admin_client: Client, profile: Any) -> None:
    response = admin_client.get(f"/profiles/{profile.pk}/")

    assert response.status_code == 200
    shown = dict(response.context["settings"])
    assert shown["Server type"] == "Exchange Server (on-premises, EWS)"
    assert shown["Authentication"] == "Basic"
    assert shown["Credentials"] == "Credentials of this profile (service account)"
    assert shown["Locate the server by autodiscover"] == "No"
    assert shown["EWS URL"] == "https://mail.example.com/EWS/Exchange.asmx"
    assert shown["Password"] == "stored"
    assert "Incoming server" not in shown  # a POP3/IMAP setting: not for an Exchange profile
    assert "OAuth client secret" not in shown
    html = response.content.decode()
    assert "Exchange Server (on-premises, EWS)" in html
    assert "exchange_onprem" not in html


def test_the_profile_page_never_shows_a_secret_and_has_no_form_for_them(admin_client: Client, profile: Any) -> None:
    html = admin_client.get(f"/profiles/{profile.pk}/").content.decode()
    assert "s3cret-profile-pw" not in html
    assert 'name="password"' not in html
    assert "<textarea" not in html and 'type="text"' not in html


def test_the_profile_page_shows_a_pop3_profiles_servers(admin_client: Client, pop3_profile: Any) -> None:
    shown = dict(admin_client.get(f"/profiles/{pop3_profile.pk}/").context["settings"])
    assert shown["Server type"] == "POP3/SMTP"
    assert (shown["Incoming server"], shown["Incoming port"], shown["Incoming TLS"]) == ("pop.example.com", 995, "Yes")
    assert "EWS URL" not in shown


def test_the_profile_page_counts_its_mailboxes_and_links_them(
    admin_client: Client, org: Organization, profile: Any, alice_mailbox: Any, bob: Any
) -> None:
    make_mailbox(org, bob, "bob@example.com", profile)
    make_mailbox(org, None, "sales@example.com", make_profile(org, "Other"), owner_type="queue", queue_name="Sales")

    html = admin_client.get(f"/profiles/{profile.pk}/").content.decode()
    assert f'<a href="/mailboxes/?profile={profile.pk}">2 mailboxes use this profile</a>' in html


def test_the_profile_page_says_when_no_mailbox_uses_it(admin_client: Client, profile: Any) -> None:
    html = admin_client.get(f"/profiles/{profile.pk}/").content.decode()
    assert "No mailbox uses this profile." in html
    assert f"/mailboxes/?profile={profile.pk}" not in html


def test_the_profile_page_offers_test_edit_and_delete(admin_client: Client, profile: Any) -> None:
    html = admin_client.get(f"/profiles/{profile.pk}/").content.decode()
    assert f'action="/profiles/{profile.pk}/test/"' in html
    assert f'href="/profiles/{profile.pk}/edit/"' in html
    assert f'href="/profiles/{profile.pk}/delete/"' in html


def test_the_profile_page_shows_the_history_in_words(admin_client: Client, profile: Any) -> None:
    admin_client.post(f"/profiles/{profile.pk}/edit/", edit_data(profile, polling_interval_minutes=9))

    response = admin_client.get(f"/profiles/{profile.pk}/")
    assert [e.action for e in response.context["history"]] == ["server_profile.updated"]
    html = response.content.decode()
    assert "Server profile changed" in html
    assert "server_profile.updated" not in html


def test_the_profile_page_refuses_a_post(admin_client: Client, profile: Any) -> None:
    response = admin_client.post(f"/profiles/{profile.pk}/", edit_data(profile, name="Renamed"))
    assert response.status_code == 405
    profile.refresh_from_db()
    assert profile.name == "Exchange"
    assert not AuditEvent.objects.filter(action="server_profile.updated").exists()


def test_the_profile_page_queries_do_not_grow_with_the_mailboxes(
    admin_client: Client, org: Organization, profile: Any
) -> None:
    url = f"/profiles/{profile.pk}/"

    def change(n: int) -> None:
        make_mailbox(org, None, f"q{n}@example.com", profile, owner_type="queue", queue_name=f"Q{n}")
        admin_client.post(f"{url}edit/", edit_data(profile, polling_interval_minutes=n + 10))

    change(0)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for n in range(1, 10):
        change(n)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url)
    assert len(response.context["history"]) == 10
    assert len(many) == len(few) <= 10


# Edit


def test_edit_page_never_renders_the_password(admin_client: Client, profile: Any) -> None:
    response = admin_client.get(f"/profiles/{profile.pk}/edit/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "s3cret-profile-pw" not in html
    assert 'name="password"' in html
    assert "A value is stored" in html


def test_edit_page_cancel_goes_back_to_the_profile(admin_client: Client, profile: Any) -> None:
    html = admin_client.get(f"/profiles/{profile.pk}/edit/").content.decode()
    assert f'<a class="btn btn-link" href="/profiles/{profile.pk}/">Cancel</a>' in html


def test_edit_saves_and_goes_back_to_the_profile_with_a_message(admin_client: Client, profile: Any) -> None:
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", edit_data(profile, name="Renamed"), follow=True)

    assert response.redirect_chain == [(f"/profiles/{profile.pk}/", 302)]
    assert response.templates[0].name == "mailboxes/profile_detail.html"
    assert "Server profile “Renamed” saved." in response.content.decode()


def test_edit_with_empty_password_keeps_the_stored_one(admin_client: Client, profile: Any) -> None:
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", edit_data(profile, polling_interval_minutes=7))

    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.password == "s3cret-profile-pw"
    assert profile.polling_interval_minutes == 7
    event = AuditEvent.objects.get(action="server_profile.updated")
    assert event.changes == {"polling_interval_minutes": [5, 7]}


def test_edit_with_new_password_replaces_it_and_audits_it_masked(
    admin_client: Client, profile: Any, admin: Any
) -> None:
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", edit_data(profile, password="brand-New-pw"))

    assert response.status_code == 302
    assert response.url == f"/profiles/{profile.pk}/"
    profile.refresh_from_db()
    assert profile.password == "brand-New-pw"
    event = AuditEvent.objects.get(action="server_profile.updated", object_id=str(profile.pk))
    assert event.actor == admin
    assert event.changes == {"password": [MASK, MASK_CHANGED]}
    assert "brand-New-pw" not in str(event.changes)
    assert "s3cret-profile-pw" not in str(event.changes)


def test_edit_cannot_move_the_profile_to_another_organization(
    admin_client: Client, profile: Any, other_org: Organization
) -> None:
    data = edit_data(profile, organization=other_org.pk)
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", data)
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.organization_id != other_org.pk


def test_edit_rejects_invalid_values_and_saves_nothing(admin_client: Client, profile: Any) -> None:
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", edit_data(profile, polling_interval_minutes=0))
    assert response.status_code == 200
    assert response.context["editing"] is True
    assert "polling_interval_minutes" in response.context["form"].errors
    profile.refresh_from_db()
    assert profile.polling_interval_minutes == 5
    assert not AuditEvent.objects.filter(action="server_profile.updated").exists()


def test_making_a_profile_default_moves_the_flag_from_the_old_default(admin_client: Client, org: Organization) -> None:
    old = make_profile(org, "Old default", is_default=True)
    new = make_profile(org, "New one")

    response = admin_client.post(f"/profiles/{new.pk}/edit/", edit_data(new, is_default="on"))

    assert response.status_code == 302
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.is_default, new.is_default) == (False, True)
    assert AuditEvent.objects.get(object_id=str(old.pk)).changes["is_default"] == [True, False]
    assert AuditEvent.objects.get(object_id=str(new.pk)).changes["is_default"] == [False, True]


def test_creating_a_default_profile_moves_the_flag(admin_client: Client, org: Organization) -> None:
    old = make_profile(org, "Old default", is_default=True)
    response = admin_client.post("/profiles/new/", profile_data(org, is_default="on"))
    assert response.status_code == 302
    old.refresh_from_db()
    assert not old.is_default
    assert EmailServerProfile.objects.get(name="Main Exchange").is_default


def test_another_organizations_profile_is_404(admin_client: Client, other_profile: Any) -> None:
    assert admin_client.get(f"/profiles/{other_profile.pk}/").status_code == 404
    assert admin_client.get(f"/profiles/{other_profile.pk}/edit/").status_code == 404
    response = admin_client.post(f"/profiles/{other_profile.pk}/edit/", edit_data(other_profile, name="Taken"))
    assert response.status_code == 404
    other_profile.refresh_from_db()
    assert other_profile.name == "Globex Exchange"


# Delete


def test_delete_get_asks_for_confirmation_and_deletes_nothing(admin_client: Client, profile: Any) -> None:
    response = admin_client.get(f"/profiles/{profile.pk}/delete/")
    assert response.status_code == 200
    assert response.context["in_use"] == []
    assert 'method="post"' in response.content.decode()
    assert EmailServerProfile.objects.filter(pk=profile.pk).exists()


def test_delete_post_deletes_and_audits(admin_client: Client, profile: Any, admin: Any) -> None:
    pk = profile.pk
    response = admin_client.post(f"/profiles/{pk}/delete/")

    assert response.status_code == 302
    assert response.url == "/profiles/"
    assert not EmailServerProfile.objects.filter(pk=pk).exists()
    event = AuditEvent.objects.get(action="server_profile.deleted")
    assert event.object_id == str(pk)
    assert event.actor == admin


def test_delete_is_refused_while_mailboxes_use_the_profile(
    admin_client: Client, profile: Any, alice_mailbox: Any
) -> None:
    page = admin_client.get(f"/profiles/{profile.pk}/delete/")
    assert page.status_code == 200
    assert page.context["in_use"] == ["alice@example.com"]
    assert "alice@example.com" in page.content.decode()
    assert "<form" not in page.content.decode().split("<main", 1)[1].split("</main>")[0]

    response = admin_client.post(f"/profiles/{profile.pk}/delete/", follow=True)
    assert response.redirect_chain == [(f"/profiles/{profile.pk}/delete/", 302)]
    assert "in use and was not deleted" in response.content.decode()
    assert EmailServerProfile.objects.filter(pk=profile.pk).exists()
    assert not AuditEvent.objects.filter(action="server_profile.deleted").exists()


def test_delete_page_names_mailboxes_without_address_by_owner(
    admin_client: Client, org: Organization, profile: Any, bob: Any
) -> None:
    make_mailbox(org, bob, "", profile)
    page = admin_client.get(f"/profiles/{profile.pk}/delete/")
    assert page.context["in_use"] == ["(Bob)"]


def test_delete_of_another_organizations_profile_is_404(admin_client: Client, other_profile: Any) -> None:
    assert admin_client.get(f"/profiles/{other_profile.pk}/delete/").status_code == 404
    assert admin_client.post(f"/profiles/{other_profile.pk}/delete/").status_code == 404
    assert EmailServerProfile.objects.filter(pk=other_profile.pk).exists()
