"""The profile and mailbox forms for people: fields grouped by what they apply to, one clear error
per problem, typed secrets asked for again, number ranges stated, users by full name, the remap
box only where it is needed, and titles that say which page this is."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django import forms
from django.test import Client

from audit.log import Actor
from mailboxes.forms import MailboxForm, ProfileForm
from mailboxes.models import EmailServerProfile, Mailbox, Membership, Organization, Role, TestStatus
from mailboxes.validators import range_of
from tests.conftest import client_for, make_profile, make_user
from tests.mailboxes.test_mailboxes import mailbox_data
from tests.mailboxes.test_profiles import edit_data as profile_edit_data
from tests.mailboxes.test_profiles import profile_data

pytestmark = pytest.mark.django_db

TYPED = "typed-Secret-7q2w"  # what the administrator types into a secret field
NOT_KEPT = "For your security the %s was not kept; enter it again."


@pytest.fixture
def admin_client(admin: Any) -> Client:
    return client_for(admin)


class FormPage(HTMLParser):
    """The fields of a page's main form: each one's attributes, and those of its group (fieldset)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.fields: dict[str, dict[str, str | None]] = {}
        self.groups: dict[str, dict[str, str | None]] = {}
        self.labels: dict[str, list[str]] = {}
        self._fieldsets: list[dict[str, str | None]] = []
        self._select: str | None = None
        self._in_option = False
        self.feed(html.split("<main", 1)[1].split("</main>", 1)[0])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "fieldset":
            self._fieldsets.append(attributes)
        elif tag in ("input", "select", "textarea") and attributes.get("name") != "csrfmiddlewaretoken":
            name = attributes["name"] or ""
            assert name not in self.fields, f"{name} is rendered twice"
            self.fields[name] = attributes
            self.groups[name] = self._fieldsets[-1] if self._fieldsets else {}
            if tag == "select":
                self._select = name
                self.labels[name] = []
        elif tag == "option" and self._select:
            self._in_option = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "fieldset":
            self._fieldsets.pop()
        elif tag == "select":
            self._select = None
        elif tag == "option":
            self._in_option = False

    def handle_data(self, data: str) -> None:
        if self._in_option and self._select:
            self.labels[self._select].append(data.strip())

    def conditions(self, name: str) -> dict[str, str | None]:
        """The data-for-* attributes of the group a field is in."""
        return {k: v for k, v in self.groups[name].items() if k.startswith("data-for-")}


def page(client: Client, url: str) -> tuple[str, FormPage]:
    html = client.get(url).content.decode()
    return html, FormPage(html)


# 6. The server-profile form: fields grouped by server type and authentication ------------------

EXCHANGE = {"data-for-kind": "exchange_online exchange_onprem"}
POP3_IMAP = {"data-for-kind": "imap_smtp pop3_smtp"}
SERVICE_ACCOUNT = {"data-for-auth-type": "basic ntlm", "data-for-credentials-source": "profile"}
OAUTH = {"data-for-auth-type": "oauth2", "data-for-kind": "exchange_online"}


@pytest.mark.parametrize(
    ("field", "conditions"),
    [
        ("name", {}),
        ("kind", {}),
        ("ews_url", EXCHANGE),
        ("use_autodiscover", EXCHANGE),
        ("auth_type", {}),
        ("credentials_source", {}),
        ("username", SERVICE_ACCOUNT),
        ("password", SERVICE_ACCOUNT),
        ("oauth_tenant_id", OAUTH),
        ("oauth_client_id", OAUTH),
        ("oauth_client_secret", OAUTH),
        *((name, POP3_IMAP) for name in ("incoming_host", "incoming_port", "incoming_tls")),
        *((name, POP3_IMAP) for name in ("outgoing_host", "outgoing_port", "outgoing_tls")),
        ("polling_interval_minutes", {}),
        ("is_default", {}),
    ],
)
def test_profile_fields_are_in_the_group_of_what_they_apply_to(
    admin_client: Client, field: str, conditions: dict[str, str]
) -> None:
    _, form = page(admin_client, "/profiles/new/")
    assert "data-field-group" in form.groups[field]
    assert form.conditions(field) == conditions


def test_profile_form_renders_every_field_once_in_a_group(admin_client: Client, profile: Any) -> None:
    for url in ("/profiles/new/", f"/profiles/{profile.pk}/edit/"):
        _, form = page(admin_client, url)
        # FormPage refuses a field rendered twice.
        assert set(form.fields) == set(ProfileForm.base_fields)
        assert all("data-field-group" in form.groups[name] for name in form.fields)


def test_without_javascript_each_group_says_what_it_is_for(admin_client: Client) -> None:
    html, _ = page(admin_client, "/profiles/new/")
    assert "<legend>POP3/IMAP and SMTP servers (for POP3/SMTP and IMAP/SMTP profiles)</legend>" in html
    assert "(for Exchange Online and Exchange Server on-premises profiles)</legend>" in html
    assert "(for Exchange Online profiles with OAuth 2.0 authentication)</legend>" in html


def test_no_server_type_gives_only_the_type_error(admin_client: Client, org: Organization) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org, kind="", ews_url=""))

    assert response.status_code == 200
    assert response.context["form"].errors == {"kind": ["Choose the server type."]}
    assert "Required for a POP3/IMAP profile" not in response.content.decode()
    assert not EmailServerProfile.objects.exists()


def test_a_pop3_profile_still_needs_its_servers(admin_client: Client, org: Organization) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org, kind="pop3_smtp", ews_url=""))
    errors = response.context["form"].errors
    assert sorted(errors) == ["incoming_host", "incoming_port", "outgoing_host", "outgoing_port"]


def test_fields_of_another_server_type_are_ignored_and_not_saved(admin_client: Client, org: Organization) -> None:
    data = profile_data(
        org,
        incoming_host="pop.example.com",
        incoming_port="not a number",  # hidden from the administrator: no error for it either
        oauth_tenant_id="tenant",
        oauth_client_secret=TYPED,
    )

    response = admin_client.post("/profiles/new/", data)

    assert response.status_code == 302
    profile = EmailServerProfile.objects.get()
    assert (profile.incoming_host, profile.incoming_port) == ("", None)
    assert (profile.oauth_tenant_id, profile.oauth_client_secret) == ("", "")
    assert profile.password == "first-Secret-1"


def test_a_pop3_profile_keeps_no_exchange_url(admin_client: Client, org: Organization) -> None:
    data = profile_data(
        org,
        kind="imap_smtp",
        incoming_host="imap.example.com",
        incoming_port=993,
        outgoing_host="smtp.example.com",
        outgoing_port=465,
        use_autodiscover="on",
    )
    assert admin_client.post("/profiles/new/", data).status_code == 302
    profile = EmailServerProfile.objects.get()
    assert (profile.ews_url, profile.use_autodiscover, profile.incoming_port) == ("", False, 993)


def test_the_service_account_is_dropped_when_each_mailbox_has_its_own(admin_client: Client, profile: Any) -> None:
    response = admin_client.post(
        f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, credentials_source="mailbox")
    )

    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.credentials_source, profile.username, profile.password) == ("mailbox", "", "")


def test_clearing_a_setting_that_does_not_apply_keeps_the_mailbox_tests(
    admin_client: Client, profile: Any, alice_mailbox: Mailbox
) -> None:
    EmailServerProfile.objects.filter(pk=profile.pk).update(incoming_host="left.over.example", incoming_port=110)
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(test_overall=TestStatus.SUCCESS)
    profile = EmailServerProfile.objects.get(pk=profile.pk)

    response = admin_client.post(f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, name="Renamed"))

    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.name, profile.incoming_host, profile.password) == ("Renamed", "", "s3cret-profile-pw")
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.test_overall == TestStatus.SUCCESS


def test_an_endpoint_change_still_needs_the_password_again(admin_client: Client, profile: Any) -> None:
    data = profile_edit_data(profile, ews_url="https://other.example/EWS/Exchange.asmx")
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", data)
    assert response.context["form"].errors == {"password": ["The server changed: enter the password again."]}


def test_a_typed_secret_is_asked_for_again_after_an_error_and_never_shown(
    admin_client: Client, org: Organization
) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org, name=" ", password=TYPED))

    html = response.content.decode()
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["name"]
    assert NOT_KEPT % "password" in html
    assert TYPED not in html


def test_an_oauth_secret_is_asked_for_again_after_an_error(admin_client: Client, org: Organization) -> None:
    data = profile_data(
        org, kind="exchange_online", auth_type="oauth2", oauth_client_id="c", oauth_client_secret=TYPED, username=""
    )
    response = admin_client.post("/profiles/new/", data)

    html = response.content.decode()
    assert list(response.context["form"].errors) == ["oauth_tenant_id"]
    assert NOT_KEPT % "OAuth client secret" in html
    assert NOT_KEPT % "password" not in html  # typed, but not used with OAuth: nothing to enter again
    assert TYPED not in html


def test_the_notice_replaces_keep_the_stored_value(admin_client: Client, profile: Any) -> None:
    response = admin_client.post(f"/profiles/{profile.pk}/edit/", profile_edit_data(profile, name="", password=TYPED))

    html = response.content.decode()
    assert NOT_KEPT % "password" in html
    assert "Leave this empty to keep it" not in html
    assert TYPED not in html and "s3cret-profile-pw" not in html


def test_no_notice_without_a_typed_secret_or_without_errors(admin_client: Client, org: Organization) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org, name=" ", password=""))
    assert "was not kept" not in response.content.decode()
    response = admin_client.post("/profiles/new/", profile_data(org, password=TYPED), follow=True)
    assert "was not kept" not in response.content.decode()


def test_the_mailbox_password_is_asked_for_again_after_an_error(
    admin_client: Client, org: Organization, alice: Any
) -> None:
    own = make_profile(org, "Per mailbox", credentials_source="mailbox", username="", password="")
    data = mailbox_data(org, alice, "not-an-address", own, username="alice", password=TYPED)

    response = admin_client.post("/mailboxes/new/", data)

    html = response.content.decode()
    assert list(response.context["form"].errors) == ["address"]
    assert NOT_KEPT % "password" in html
    assert TYPED not in html


# 7. Numbers: the range in the help text, the input's min and max, and the error ----------------


NUMBERS = [
    ("polling_interval_minutes", 1, 1440),
    ("max_concurrent_connections", 1, 300),
    ("timeout_seconds", 5, 600),
    ("incoming_port", 1, 65535),
    ("outgoing_port", 1, 65535),
]


def test_every_number_field_has_a_stated_range() -> None:
    form = ProfileForm(admin_org_ids=[])
    numbers = {name for name, field in form.fields.items() if isinstance(field, forms.IntegerField)}
    assert numbers == {name for name, _, _ in NUMBERS}
    assert not [name for name, f in MailboxForm(admin_org_ids=[]).fields.items() if isinstance(f, forms.IntegerField)]


@pytest.mark.parametrize(("name", "low", "high"), NUMBERS)
def test_number_inputs_and_help_state_the_validators_range(
    admin_client: Client, name: str, low: int, high: int
) -> None:
    limits = range_of(EmailServerProfile._meta.get_field(name))
    assert limits is not None and (limits.minimum, limits.maximum) == (low, high)

    html, form = page(admin_client, "/profiles/new/")

    assert (form.fields[name]["min"], form.fields[name]["max"]) == (str(low), str(high))
    help_text = html.split(f'id="id_{name}_helptext"', 1)[1].split("</div>", 1)[0]
    assert f"{low} to {high}" in help_text


@pytest.mark.parametrize("value", [0, -3, 2000, "1.5", "abc"])
def test_the_polling_interval_error_states_the_range(admin_client: Client, org: Organization, value: Any) -> None:
    response = admin_client.post("/profiles/new/", profile_data(org, polling_interval_minutes=value))
    assert response.context["form"].errors == {
        "polling_interval_minutes": ["Enter a whole number of minutes from 1 to 1440."]
    }


@pytest.mark.parametrize(("name", "low", "high"), NUMBERS)
def test_each_number_error_states_the_range(
    admin_client: Client, org: Organization, name: str, low: int, high: int
) -> None:
    pop3 = {"kind": "pop3_smtp", "ews_url": "", "incoming_host": "pop.example.com", "outgoing_host": "smtp.example"}
    valid = profile_data(org, **pop3, incoming_port=995, outgoing_port=587)
    for value in (low - 1, -3, high + 1):
        response = admin_client.post("/profiles/new/", {**valid, name: value})
        [error] = response.context["form"].errors[name]
        assert f"from {low} to {high}." in error
    assert admin_client.post("/profiles/new/", {**valid, name: high}).status_code == 302


# 8. The mailbox form: users by full name, the owner that applies, the remap box ----------------


def test_user_choices_show_full_names_in_their_order(
    admin_client: Client, org: Organization, alice: Any, system: Actor
) -> None:
    for username, first, last in [("xavier", "Anna", "Berg"), ("aaron", "", ""), ("zoe", "Zoe", "Adams")]:
        Membership.add(system, make_user(username, first_name=first, last_name=last), org, Role.USER)

    _, form = page(admin_client, "/mailboxes/new/")

    # After the empty choice: by full name (or user name), not by user name.
    assert form.labels["user"][1:] == [
        "aaron",
        "Admin (admin)",
        "Alice (alice)",
        "Anna Berg (xavier)",
        "Zoe Adams (zoe)",
    ]


def test_mailbox_fields_are_in_the_group_of_what_they_apply_to(admin_client: Client, org: Organization) -> None:
    _, form = page(admin_client, "/mailboxes/new/")

    assert form.conditions("user") == {"data-for-owner-type": "user"}
    assert form.conditions("queue_name") == {"data-for-owner-type": "queue"}
    for name in ("owner_type", "address", "profile", "username", "password"):
        assert form.conditions(name) == {}
    assert set(form.fields) == set(MailboxForm.base_fields) - {"confirm_remap"}


def test_a_queue_mailbox_keeps_no_user(admin_client: Client, org: Organization, alice: Any, profile: Any) -> None:
    data = mailbox_data(org, alice, "sales@example.com", profile, owner_type="queue", queue_name="Sales")

    assert admin_client.post("/mailboxes/new/", data).status_code == 302
    mailbox = Mailbox.objects.get()
    assert (mailbox.user, mailbox.queue_name, mailbox.owner_name) == (None, "Sales", "Sales")


def test_a_user_mailbox_keeps_no_queue_name(admin_client: Client, org: Organization, alice: Any, profile: Any) -> None:
    data = mailbox_data(org, alice, "alice@example.com", profile, queue_name="Sales")

    assert admin_client.post("/mailboxes/new/", data).status_code == 302
    mailbox = Mailbox.objects.get()
    assert (mailbox.user, mailbox.queue_name) == (alice, "")


def test_the_remap_box_shows_only_with_a_conflict_and_names_the_owner(
    admin_client: Client, org: Organization, bob: Any, profile: Any, alice_mailbox: Mailbox
) -> None:
    html, form = page(admin_client, "/mailboxes/new/")
    assert "confirm_remap" not in form.fields
    assert "Move this address here" not in html

    response = admin_client.post("/mailboxes/new/", mailbox_data(org, bob, "x@", profile))
    assert "confirm_remap" not in FormPage(response.content.decode()).fields

    response = admin_client.post("/mailboxes/new/", mailbox_data(org, bob, "Alice@example.com", profile))

    html = response.content.decode()
    form = FormPage(html)
    assert form.fields["confirm_remap"]["type"] == "checkbox"
    assert form.groups["confirm_remap"] is form.groups["address"]
    assert "Move this address here from the mailbox of Alice" in html
    assert "already mapped to the mailbox of Alice" in html


def test_the_remap_box_stays_ticked_when_other_fields_are_wrong(
    admin_client: Client, org: Organization, bob: Any, alice_mailbox: Mailbox
) -> None:
    data = mailbox_data(org, bob, "alice@example.com", None, confirm_remap="on")  # no profile: an error

    response = admin_client.post("/mailboxes/new/", data)

    assert list(response.context["form"].errors) == ["profile"]
    assert "checked" in FormPage(response.content.decode()).fields["confirm_remap"]
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.address == "alice@example.com"


def test_another_organizations_address_is_only_unavailable(
    admin_client: Client, org: Organization, bob: Any, profile: Any, other_mailbox: Mailbox
) -> None:
    response = admin_client.post("/mailboxes/new/", mailbox_data(org, bob, "gina@globex.example", profile))

    html = response.content.decode()
    assert response.context["form"].errors["address"] == ["This address is not available."]
    assert "confirm_remap" not in FormPage(html).fields
    assert "Move this address here" not in html
    assert "Gina" not in html and "Globex" not in html


# 14. Titles: a form page is not its object's page --------------------------------------------


def title_and_heading(html: str) -> tuple[str, str]:
    title = html.split("<title>", 1)[1].split(" · ", 1)[0]
    heading = html.split('<h1 class="h3', 1)[1].split(">", 1)[1].split("</h1>", 1)[0]
    return title, heading


def test_profile_pages_have_their_own_titles(admin_client: Client, profile: Any) -> None:
    assert title_and_heading(admin_client.get("/profiles/new/").content.decode()) == ("New server profile",) * 2
    shown = title_and_heading(admin_client.get(f"/profiles/{profile.pk}/").content.decode())
    assert shown == ("Server profile “Exchange”",) * 2

    edit = title_and_heading(admin_client.get(f"/profiles/{profile.pk}/edit/").content.decode())
    assert edit == ("Edit server profile “Exchange”",) * 2


def test_mailbox_pages_have_their_own_titles(admin_client: Client, alice_mailbox: Mailbox) -> None:
    assert title_and_heading(admin_client.get("/mailboxes/new/").content.decode()) == ("New mailbox",) * 2
    edit = title_and_heading(admin_client.get(f"/mailboxes/{alice_mailbox.pk}/edit/").content.decode())
    assert edit == ("Edit mailbox alice@example.com",) * 2
    detail_title = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/").content.decode().split("<title>")[1]
    assert not detail_title.startswith("Edit")
