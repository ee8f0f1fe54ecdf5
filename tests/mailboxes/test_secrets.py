"""Secrets in the console: never in error reports, asked again for a new server, and a bad key
breaks only the pages that need the secret (issue 7, security items 1, 4 and 5)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.core.signals import got_request_exception
from django.test import Client
from django.views.debug import ExceptionReporter

from crmsync_portal.checks import check_encryption_keys
from crmsync_portal.lib import crypto
from crmsync_portal.lib.crypto import EncryptionKeysError
from mailboxes.forms import ProfileForm
from mailboxes.models import EmailServerProfile, Mailbox, Organization, TestStatus
from tests.conftest import client_for, make_mailbox, make_profile
from tests.mailboxes.test_mailboxes import edit_data as mailbox_edit_data
from tests.mailboxes.test_mailboxes import mailbox_data
from tests.mailboxes.test_profiles import profile_data

pytestmark = pytest.mark.django_db

TYPED = "typed-Secret-9f3k"  # what the administrator types into a secret field
STORED = "s3cret-profile-pw"  # the profile fixture's password
FRAME_SECRET = "".join(["frame", "-secret-", "4711"])  # built, so no source line shown in a report holds it
UNDECRYPTABLE = "The stored password cannot be decrypted with the current ENCRYPTION_KEYS: enter it again."


@pytest.fixture
def admin_client(admin: Any) -> Client:
    return client_for(admin)


def new_key() -> str:
    return Fernet.generate_key().decode()


def profile_edit_data(profile: EmailServerProfile, **overrides: Any) -> dict[str, Any]:
    """The POST of the profile's edit page as rendered (secret fields left empty)."""
    form = ProfileForm(instance=profile, admin_org_ids=[profile.organization_id])
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if field.disabled or name in form.secret_fields or value is False:
            continue
        data[name] = "on" if value is True else "" if value is None else value
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None and v is not False}


def own_credentials_mailbox(org: Organization, alice: Any) -> Mailbox:
    profile = make_profile(org, "Per mailbox", credentials_source="mailbox", username="", password="")
    return make_mailbox(org, alice, "alice@example.com", profile, username="alice", password="alice-own-pw")


# 1. Error reports (debug page, error emails) show secrets as stars ----------------------------


@pytest.fixture
def reports() -> Iterator[list[str]]:
    """The error report of each request that fails, as the error email would carry it."""
    texts: list[str] = []

    def report(sender: Any, request: Any, **kwargs: Any) -> None:
        reporter = ExceptionReporter(request, *sys.exc_info(), is_email=True)
        texts.append(reporter.get_traceback_html() + reporter.get_traceback_text())

    got_request_exception.connect(report)
    yield texts
    got_request_exception.disconnect(report)


@pytest.mark.parametrize("page", ["profile-create", "profile-edit", "mailbox-create", "mailbox-edit"])
def test_error_reports_never_show_a_typed_secret(
    admin: Any, org: Organization, alice: Any, profile: Any, settings: Any, reports: list[str], page: str
) -> None:
    mailbox = own_credentials_mailbox(org, alice)
    url, data = {
        "profile-create": ("/profiles/new/", profile_data(org, password=TYPED)),
        "profile-edit": (f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, password=TYPED)),
        "mailbox-create": ("/mailboxes/new/", mailbox_data(org, admin, "admin@example.com", profile, password=TYPED)),
        "mailbox-edit": (f"/mailboxes/{mailbox.pk}/edit/", mailbox_edit_data(mailbox, password=TYPED)),
    }[page]
    settings.ENCRYPTION_KEYS = ["not-a-fernet-key"]  # saving the secret fails: a 500 with the POST in hand
    client = client_for(admin)
    client.raise_request_exception = False

    response = client.post(url, data)

    assert response.status_code == 500
    [report] = reports
    assert "EncryptionKeysError" in report
    assert TYPED not in report
    assert "alice-own-pw" not in report and STORED not in report
    assert "password" in report and "********************" in report


def test_crypto_functions_hide_the_plaintext_in_error_reports(settings: Any) -> None:
    settings.ENCRYPTION_KEYS = ["not-a-fernet-key"]
    try:
        crypto.encrypt(FRAME_SECRET)
    except EncryptionKeysError:
        reporter = ExceptionReporter(None, *sys.exc_info())
    html = reporter.get_traceback_html()
    assert "encrypt" in html
    assert FRAME_SECRET not in html


# 4. A new server needs the secrets typed again ------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"ews_url": "https://attacker.example/EWS/Exchange.asmx"},
        {"use_autodiscover": "on"},
        {"kind": "exchange_online"},
    ],
    ids=["ews-url", "autodiscover", "kind"],
)
def test_an_endpoint_change_needs_the_password_again(
    admin_client: Client, profile: Any, alice_mailbox: Any, change: dict[str, Any]
) -> None:
    before = profile_edit_data(profile)
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, **change))

    assert response.status_code == 200
    assert response.context["form"].errors["password"] == ["The server changed: enter the password again."]
    profile.refresh_from_db()
    assert profile_edit_data(profile) == before


@pytest.mark.parametrize(
    "change",
    [
        {"incoming_host": "pop.attacker.example"},
        {"incoming_port": 110},
        {"outgoing_host": "smtp.attacker.example"},
        {"outgoing_port": 25},
        {"incoming_tls": None},
    ],
    ids=["incoming-host", "incoming-port", "outgoing-host", "outgoing-port", "tls-off"],
)
def test_a_pop3_endpoint_change_needs_the_password_again(
    admin_client: Client, pop3_profile: Any, change: dict[str, Any]
) -> None:
    response = admin_client.post(f"/profiles/{pop3_profile.pk}/edit/", profile_edit_data(pop3_profile, **change))

    assert response.status_code == 200
    assert response.context["form"].errors["password"] == ["The server changed: enter the password again."]
    pop3_profile.refresh_from_db()
    assert pop3_profile.incoming_host == "pop.example.com" and pop3_profile.outgoing_port == 587


def test_an_endpoint_change_with_the_password_typed_again_saves(
    admin_client: Client, profile: Any, alice_mailbox: Mailbox
) -> None:
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(test_overall=TestStatus.SUCCESS)
    data = profile_edit_data(profile, ews_url="https://new.example/EWS/Exchange.asmx", password=TYPED)

    response = admin_client.post(f"/profiles/{profile.pk}/edit/", data)

    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.ews_url, profile.password) == ("https://new.example/EWS/Exchange.asmx", TYPED)
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.test_overall == TestStatus.NOT_RUN


def test_an_oauth_endpoint_change_needs_the_client_secret_and_drops_the_unused_password(
    admin_client: Client, org: Organization
) -> None:
    profile = make_profile(
        org,
        "Online",
        kind="exchange_online",
        auth_type="oauth2",
        oauth_tenant_id="t",
        oauth_client_id="c",
        oauth_client_secret="client-secret-value",
    )
    url = f"/profiles/{profile.pk}/edit/"
    changed = {"ews_url": "https://attacker.example/EWS/Exchange.asmx"}

    response = admin_client.post(url, profile_edit_data(profile, **changed))
    errors = response.context["form"].errors
    assert errors["oauth_client_secret"] == ["The server changed: enter the OAuth client secret again."]
    assert "password" not in errors

    response = admin_client.post(url, profile_edit_data(profile, **changed, oauth_client_secret="new-client-secret"))
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.oauth_client_secret == "new-client-secret"
    assert profile.password == ""  # not used by OAuth, never to be sent to the new server later


def test_other_changes_keep_the_stored_secret(admin_client: Client, profile: Any) -> None:
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, name="Renamed"))
    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.name, profile.password) == ("Renamed", STORED)


def test_the_profile_form_says_a_new_server_needs_the_secrets_again(admin_client: Client, profile: Any) -> None:
    html = admin_client.get(f"/profiles/{profile.pk}/edit/").content.decode()
    assert "If you change the server" in html
    assert "a stored secret is never sent to a new server" in html


# 5. ENCRYPTION_KEYS: a system check, lazy decryption, a clear error where a secret is needed ----


def test_the_system_check_names_the_malformed_key_and_never_shows_it(settings: Any) -> None:
    assert check_encryption_keys() == []
    settings.ENCRYPTION_KEYS = [new_key(), "not-a-fernet-key"]

    [error] = check_encryption_keys()
    assert error.id == "crmsync.E001"
    assert "ENCRYPTION_KEYS[1] (key 2 of 2) is not a valid Fernet key" in error.msg
    assert "not-a-fernet-key" not in error.msg
    with pytest.raises(SystemCheckError, match=r"ENCRYPTION_KEYS\[1\]"):
        call_command("check")


@pytest.mark.parametrize("keys", [[], "a-string-not-a-list", [""]])
def test_the_system_check_refuses_empty_or_misshapen_keys(settings: Any, keys: Any) -> None:
    settings.ENCRYPTION_KEYS = keys
    assert [e.id for e in check_encryption_keys()] == ["crmsync.E001"]


@pytest.mark.parametrize("keys", [[new_key()], ["not-a-fernet-key"]], ids=["wrong-key", "malformed-key"])
@pytest.mark.parametrize("url", ["/mailboxes/", "/profiles/", "/dashboard/", "/audit/", "/approvals/"])
def test_list_pages_work_with_a_wrong_or_malformed_key(
    admin_client: Client, org: Organization, alice: Any, profile: Any, settings: Any, keys: list[str], url: str
) -> None:
    own_credentials_mailbox(org, alice)
    settings.ENCRYPTION_KEYS = keys
    assert admin_client.get(url).status_code == 200


def test_loading_a_row_decrypts_nothing(profile: Any, settings: Any) -> None:
    settings.ENCRYPTION_KEYS = ["not-a-fernet-key"]
    loaded = EmailServerProfile.objects.get(pk=profile.pk)
    assert loaded.name == profile.name
    with pytest.raises(EncryptionKeysError):
        loaded.password  # noqa: B018


def test_the_profile_page_asks_for_a_password_it_cannot_decrypt(
    admin_client: Client, profile: Any, settings: Any
) -> None:
    settings.ENCRYPTION_KEYS = [new_key()]  # the key that encrypted the password was removed
    url = f"/profiles/{profile.pk}/edit/"

    page = admin_client.get(url)
    assert page.status_code == 200
    assert UNDECRYPTABLE in page.content.decode()

    response = admin_client.post(url, profile_edit_data(profile, polling_interval_minutes=7))
    assert response.status_code == 200
    assert response.context["form"].errors["password"] == [UNDECRYPTABLE]

    response = admin_client.post(url, profile_edit_data(profile, polling_interval_minutes=7, password=TYPED))
    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.polling_interval_minutes, profile.password) == (7, TYPED)


def test_the_mailbox_page_asks_for_a_password_it_cannot_decrypt(
    admin_client: Client, org: Organization, alice: Any, settings: Any
) -> None:
    mailbox = own_credentials_mailbox(org, alice)
    settings.ENCRYPTION_KEYS = [new_key()]
    url = f"/mailboxes/{mailbox.pk}/edit/"

    page = admin_client.get(url)
    assert page.status_code == 200
    assert UNDECRYPTABLE in page.content.decode()

    response = admin_client.post(url, mailbox_edit_data(mailbox))
    assert response.status_code == 200
    assert response.context["form"].errors["password"] == [UNDECRYPTABLE]

    response = admin_client.post(url, mailbox_edit_data(mailbox, password=TYPED))
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.password == TYPED
