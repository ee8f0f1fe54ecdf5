"""CRM record pages, the same for every record type: who sees what, create, edit, delete (STYLE.md 10)."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.test import Client

from audit.log import Actor
from crm.models import Account, Appointment, Contact, Lead, Task
from crm.views import KINDS
from mailboxes.models import Membership, Organization, Role
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

ALL_KINDS = list(KINDS)

DEFAULTS: dict[str, dict[str, Any]] = {
    "account": {"name": "Initech"},
    "contact": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    "lead": {"first_name": "Grace", "last_name": "Hopper", "company_name": "Navy"},
    "appointment": {
        "subject": "Quarterly review",
        "start": datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC),
        "end": datetime.datetime(2026, 12, 1, 11, 0, tzinfo=datetime.UTC),
    },
    "task": {"subject": "Send the offer", "due": datetime.date(2026, 12, 5)},
}

# A valid POST of each create form, without organization and owner.
POSTS: dict[str, dict[str, Any]] = {
    "account": {"name": "  Umbrella  ", "email": "Info@Umbrella.EXAMPLE", "phone": " 555 "},
    "contact": {"first_name": " Alan ", "last_name": "Turing", "email": "Alan@Example.COM", "is_active": "on"},
    "lead": {"first_name": "Linus", "last_name": "Torvalds", "status": "new"},
    "appointment": {"subject": "Kick-off", "start": "2026-12-02T09:00", "end": "2026-12-02T10:00", "status": "open"},
    "task": {"subject": " Call back ", "due": "2026-12-03", "status": "open", "priority": "high"},
}

# The field each type's edit test changes, with the new value.
EDITS = {
    "account": ("name", "Initech Ltd"),
    "contact": ("job_title", "Analyst"),
    "lead": ("status", "qualified"),
    "appointment": ("location", "Room 4"),
    "task": ("priority", "high"),
}


def make_record(kind: str, org: Organization, owner: Any, **fields: Any) -> Any:
    return KINDS[kind].model.objects.create(organization=org, owner=owner, **{**DEFAULTS[kind], **fields})


def url(kind: str, action: str, record: Any = None) -> str:
    base = f"/crm/{KINDS[kind].slug}/"
    if action == "list":
        return base
    if action == "create":
        return base + "new/"
    suffix = {"detail": "", "edit": "edit/", "delete": "delete/"}[action]
    return f"{base}{record.pk}/{suffix}"


def listed(response: Any) -> list[str]:
    return [str(record) for record, _values in response.context["rows"]]


def edit_data(client: Client, kind: str, record: Any, **overrides: Any) -> dict[str, Any]:
    """The POST of the edit page as rendered for ``record``; None drops a field (an unticked box)."""
    form = client.get(url(kind, "edit", record)).context["form"]
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if isinstance(value, datetime.datetime):
            value = value.strftime("%Y-%m-%dT%H:%M")
        elif value is True:
            value = "on"
        elif value is None or value is False:
            continue
        data[name] = value
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def assert_refused(response: Any, field: str, text: str = "") -> None:
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    if text:
        assert text in " ".join(errors[field])


@pytest.fixture(params=ALL_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def records(kind: str, org: Organization, alice: Any, bob: Any, outsider: Any, other_org: Organization) -> dict:
    """One record each for alice and bob in Acme, and one of Globex's administrator."""
    return {
        "alice": make_record(kind, org, alice),
        "bob": make_record(kind, org, bob),
        "globex": make_record(kind, other_org, outsider),
    }


# Who sees what


def test_admin_lists_every_record_of_the_organization(kind: str, records: dict, admin: Any) -> None:
    response = client_for(admin).get(url(kind, "list"))
    assert response.status_code == 200
    ids = {record.pk for record, _values in response.context["rows"]}
    assert ids == {records["alice"].pk, records["bob"].pk}


def test_user_lists_only_her_own_records(kind: str, records: dict, alice: Any) -> None:
    response = client_for(alice).get(url(kind, "list"))
    assert [record.pk for record, _values in response.context["rows"]] == [records["alice"].pk]
    # A plain user has nothing to filter by owner.
    assert "owner" not in response.context["form"].fields


@pytest.mark.parametrize("persona", ["approver", "auditor", "charlie"])
def test_other_roles_see_no_records(request: pytest.FixtureRequest, kind: str, records: dict, persona: str) -> None:
    client = client_for(request.getfixturevalue(persona))
    for action in ("list", "create"):
        assert client.get(url(kind, action)).status_code == 403
    for action in ("detail", "edit", "delete"):
        assert client.get(url(kind, action, records["alice"])).status_code == 403


@pytest.mark.parametrize("action", ["detail", "edit", "delete"])
def test_another_users_record_is_hidden_from_a_user(kind: str, records: dict, alice: Any, action: str) -> None:
    client = client_for(alice)
    assert client.get(url(kind, action, records["bob"])).status_code == 404
    assert client.get(url(kind, action, records["alice"])).status_code == 200


@pytest.mark.parametrize("action", ["detail", "edit", "delete"])
def test_another_organizations_record_is_hidden(kind: str, records: dict, admin: Any, action: str) -> None:
    assert client_for(admin).get(url(kind, action, records["globex"])).status_code == 404


def test_an_admin_opens_a_users_record(kind: str, records: dict, admin: Any) -> None:
    response = client_for(admin).get(url(kind, "detail", records["bob"]))
    assert response.status_code == 200
    assert response.context["record"] == records["bob"]
    assert "Bob" in response.context["owner"]


def test_an_auditor_who_is_a_user_elsewhere_is_refused_in_the_audited_organization(
    kind: str, records: dict, auditor: Any, other_org: Organization
) -> None:
    Membership.add(Actor.system(), auditor, other_org, Role.USER)
    client = client_for(auditor)
    assert client.get(url(kind, "list")).status_code == 200
    assert client.get(url(kind, "detail", records["alice"])).status_code == 403
    assert client.get(url(kind, "detail", records["globex"])).status_code == 404


# Create


def test_a_user_creating_a_record_becomes_its_owner(kind: str, org: Organization, alice: Any, bob: Any) -> None:
    # An owner in the POST is ignored: a plain user's form has no owner field.
    response = client_for(alice).post(url(kind, "create"), {"organization": org.pk, "owner": bob.pk, **POSTS[kind]})

    record = KINDS[kind].model.objects.get()
    assert response.status_code == 302
    assert response.url == url(kind, "detail", record)
    assert (record.owner, record.organization, record.version) == (alice, org, 1)


def test_create_form_preselects_the_only_organization(kind: str, org: Organization, alice: Any) -> None:
    form = client_for(alice).get(url(kind, "create")).context["form"]
    assert form["organization"].initial == org.pk


def test_an_admin_picks_the_owner(kind: str, org: Organization, admin: Any, bob: Any) -> None:
    response = client_for(admin).post(url(kind, "create"), {"organization": org.pk, "owner": bob.pk, **POSTS[kind]})
    assert response.status_code == 302
    assert KINDS[kind].model.objects.get().owner == bob


def test_an_admin_cannot_give_a_record_to_a_non_member(
    kind: str, org: Organization, admin: Any, outsider: Any, other_org: Organization
) -> None:
    # The admin of two organizations is offered the members of both; the owner must be of the record's.
    Membership.add(Actor.system(), admin, other_org, Role.ADMINISTRATOR)
    response = client_for(admin).post(
        url(kind, "create"), {"organization": org.pk, "owner": outsider.pk, **POSTS[kind]}
    )
    assert_refused(response, "owner", "member of the record's organization")
    assert not KINDS[kind].model.all_objects.exists()


def test_an_admin_elsewhere_only_creates_own_records_where_she_is_a_user(
    kind: str, org: Organization, other_org: Organization, outsider: Any, bob: Any
) -> None:
    # Bob is a member of both organizations: a valid owner, but not hers to choose in Acme.
    Membership.add(Actor.system(), outsider, org, Role.USER)
    Membership.add(Actor.system(), bob, other_org, Role.USER)
    response = client_for(outsider).post(url(kind, "create"), {"organization": org.pk, "owner": bob.pk, **POSTS[kind]})
    assert_refused(response, "owner", "only create records you own")
    assert not KINDS[kind].model.all_objects.exists()


def test_a_user_cannot_create_in_another_organization(
    kind: str, alice: Any, other_org: Organization, outsider: Any
) -> None:
    response = client_for(alice).post(url(kind, "create"), {"organization": other_org.pk, **POSTS[kind]})
    assert_refused(response, "organization")
    assert not KINDS[kind].model.all_objects.exists()


def test_create_normalises_the_text(org: Organization, alice: Any) -> None:
    client = client_for(alice)
    for kind in ("account", "contact", "task"):
        assert client.post(url(kind, "create"), {"organization": org.pk, **POSTS[kind]}).status_code == 302
    account, contact, task = Account.objects.get(), Contact.objects.get(), Task.objects.get()
    assert (account.name, account.email, account.phone) == ("Umbrella", "info@umbrella.example", "555")
    assert (contact.first_name, contact.email) == ("Alan", "alan@example.com")
    assert (task.subject, task.due, task.priority) == ("Call back", datetime.date(2026, 12, 3), "high")


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [("account", "name", "   "), ("contact", "last_name", ""), ("contact", "email", "not-an-address")],
)
def test_create_rejects_invalid_values(org: Organization, alice: Any, kind: str, field: str, value: str) -> None:
    response = client_for(alice).post(url(kind, "create"), {"organization": org.pk, **POSTS[kind], field: value})
    assert_refused(response, field)
    assert not KINDS[kind].model.all_objects.exists()


# Edit


def test_edit_saves_and_the_version_grows(kind: str, records: dict, alice: Any) -> None:
    record = records["alice"]
    client = client_for(alice)
    field, value = EDITS[kind]

    response = client.post(url(kind, "edit", record), edit_data(client, kind, record, **{field: value}))

    assert response.status_code == 302
    assert response.url == url(kind, "detail", record)
    before = record.updated_at
    record.refresh_from_db()
    assert getattr(record, field) == value
    assert record.version == 2
    assert record.updated_at > before
    assert record.owner == alice


def test_edit_without_changes_keeps_the_version(kind: str, records: dict, admin: Any) -> None:
    record = records["bob"]
    client = client_for(admin)
    assert client.post(url(kind, "edit", record), edit_data(client, kind, record)).status_code == 302
    record.refresh_from_db()
    assert record.version == 1


def test_edit_refuses_a_record_changed_since_the_page_was_opened(kind: str, records: dict, alice: Any) -> None:
    record = records["alice"]
    client = client_for(alice)
    field, value = EDITS[kind]
    data = edit_data(client, kind, record, **{field: value})
    KINDS[kind].model.objects.get(pk=record.pk).save()  # a sync saved it meanwhile: version 2

    response = client.post(url(kind, "edit", record), data)

    assert response.status_code == 200
    assert "changed by someone else" in " ".join(response.context["form"].non_field_errors())
    record.refresh_from_db()
    assert record.version == 2
    assert getattr(record, field) != value


def test_edit_keeps_the_organization(
    kind: str, records: dict, outsider: Any, org: Organization, other_org: Organization
) -> None:
    record = records["globex"]
    Membership.add(Actor.system(), outsider, org, Role.ADMINISTRATOR)
    client = client_for(outsider)
    data = edit_data(client, kind, record, organization=org.pk)
    assert client.post(url(kind, "edit", record), data).status_code == 302
    record.refresh_from_db()
    assert record.organization == other_org


def test_an_admin_hands_a_record_to_another_member(kind: str, records: dict, admin: Any, alice: Any, bob: Any) -> None:
    record = records["alice"]
    client = client_for(admin)
    assert client.post(url(kind, "edit", record), edit_data(client, kind, record, owner=bob.pk)).status_code == 302
    record.refresh_from_db()
    assert record.owner == bob
    # Alice no longer sees it.
    assert client_for(alice).get(url(kind, "detail", record)).status_code == 404


def test_a_user_cannot_edit_another_users_record(kind: str, records: dict, alice: Any) -> None:
    record = records["bob"]
    field, value = EDITS[kind]
    response = client_for(alice).post(url(kind, "edit", record), {field: value, "version": 1})
    assert response.status_code == 404
    record.refresh_from_db()
    assert record.version == 1


# Delete


def test_delete_asks_first_and_get_changes_nothing(kind: str, records: dict, alice: Any) -> None:
    record = records["alice"]
    response = client_for(alice).get(url(kind, "delete", record))
    assert response.status_code == 200
    assert 'method="post"' in response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()
    record.refresh_from_db()
    assert record.deleted_at is None


def test_delete_hides_the_record_but_keeps_the_row(kind: str, records: dict, alice: Any) -> None:
    record = records["alice"]
    client = client_for(alice)

    response = client.post(url(kind, "delete", record))

    assert response.status_code == 302
    assert response.url == url(kind, "list")
    model = KINDS[kind].model
    assert not model.objects.filter(pk=record.pk).exists()
    kept = model.all_objects.get(pk=record.pk)
    assert kept.deleted_at is not None
    assert kept.version == 2
    assert listed(client.get(url(kind, "list"))) == []
    assert client.get(url(kind, "detail", record)).status_code == 404
    assert client.post(url(kind, "delete", record)).status_code == 404


@pytest.mark.parametrize("persona", ["bob", "auditor", "outsider"])
def test_others_cannot_delete(request: pytest.FixtureRequest, kind: str, records: dict, persona: str) -> None:
    response = client_for(request.getfixturevalue(persona)).post(url(kind, "delete", records["alice"]))
    assert response.status_code == (403 if persona == "auditor" else 404)
    assert KINDS[kind].model.objects.filter(pk=records["alice"].pk).exists()


def test_an_admin_deletes_a_users_record(kind: str, records: dict, admin: Any) -> None:
    assert client_for(admin).post(url(kind, "delete", records["bob"])).status_code == 302
    assert KINDS[kind].model.all_objects.get(pk=records["bob"].pk).is_deleted


# List: search, filters, sort, pages


@pytest.fixture
def contacts(org: Organization, alice: Any, bob: Any) -> dict[str, Contact]:
    initech = Account.objects.create(organization=org, owner=alice, name="Initech")
    return {
        "ada": make_record("contact", org, alice, account=initech, job_title="Engineer"),
        "alan": make_record("contact", org, bob, first_name="Alan", last_name="Turing", email="alan@example.com"),
        "kurt": make_record(
            "contact", org, alice, first_name="Kurt", last_name="Gödel", email="kurt@ias.example", is_active=False
        ),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lovelace", ["Ada Lovelace"]),
        ("ADA LOVE", ["Ada Lovelace"]),  # every word matches some field
        ("ada turing", []),
        ("ias.example", ["Kurt Gödel"]),
        ("initech", ["Ada Lovelace"]),  # the account's name
        ("engineer", ["Ada Lovelace"]),
        ("example", ["Kurt Gödel", "Ada Lovelace", "Alan Turing"]),  # by last name
    ],
)
def test_list_search(contacts: dict, admin: Any, query: str, expected: list[str]) -> None:
    assert listed(client_for(admin).get("/crm/contacts/", {"q": query})) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"is_active": "no"}, ["Kurt Gödel"]),
        ({"is_active": "yes"}, ["Ada Lovelace", "Alan Turing"]),
        ({"is_active": "bogus"}, ["Kurt Gödel", "Ada Lovelace", "Alan Turing"]),
        ({"owner": "bob"}, ["Alan Turing"]),
        ({"owner": "alice", "is_active": "yes"}, ["Ada Lovelace"]),
    ],
)
def test_list_filters(contacts: dict, admin: Any, params: dict, expected: list[str]) -> None:
    if "owner" in params:
        params = {**params, "owner": contacts["ada"].owner.__class__.objects.get(username=params["owner"]).pk}
    assert listed(client_for(admin).get("/crm/contacts/", params)) == expected


def test_a_user_cannot_filter_her_way_to_others_records(contacts: dict, alice: Any, bob: Any) -> None:
    response = client_for(alice).get("/crm/contacts/", {"owner": bob.pk, "q": "turing"})
    assert listed(response) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "completed"}, ["Done"]),
        ({"priority": "high"}, ["Urgent"]),
        ({"status": "open", "priority": "low"}, ["Later"]),
        ({}, ["Urgent", "Later", "Done"]),  # by due date
        ({"sort": "-due"}, ["Done", "Later", "Urgent"]),
        ({"sort": "subject"}, ["Done", "Later", "Urgent"]),
        ({"sort": "priority"}, ["Urgent", "Later", "Done"]),  # high < low < normal, as stored
        ({"sort": "nonsense"}, ["Urgent", "Later", "Done"]),
    ],
)
def test_task_list_filters_and_sorts(org: Organization, alice: Any, params: dict, expected: list[str]) -> None:
    make_record("task", org, alice, subject="Urgent", due=datetime.date(2026, 12, 1), priority="high")
    make_record("task", org, alice, subject="Later", due=datetime.date(2026, 12, 9), priority="low")
    make_record("task", org, alice, subject="Done", due=datetime.date(2026, 12, 20), status="completed")
    assert listed(client_for(alice).get("/crm/tasks/", params)) == expected


def test_lead_list_filters_by_status(org: Organization, alice: Any) -> None:
    make_record("lead", org, alice, last_name="New")
    make_record("lead", org, alice, last_name="Won", status="qualified")
    assert listed(client_for(alice).get("/crm/leads/", {"status": "qualified"})) == ["Grace Won"]


def test_list_sorts_contacts_both_ways(contacts: dict, admin: Any) -> None:
    client = client_for(admin)
    assert listed(client.get("/crm/contacts/", {"sort": "-__str__"})) == ["Alan Turing", "Ada Lovelace", "Kurt Gödel"]
    assert listed(client.get("/crm/contacts/", {"sort": "email"}))[0] == "Ada Lovelace"
    assert listed(client.get("/crm/contacts/", {"sort": "-email"}))[0] == "Kurt Gödel"


def test_list_sort_links_toggle_direction_and_keep_filters(contacts: dict, admin: Any) -> None:
    html = client_for(admin).get("/crm/contacts/", {"sort": "email", "is_active": "yes"}).content.decode()
    assert "?is_active=yes&amp;sort=-email" in html
    assert "?is_active=yes&amp;sort=job_title" in html


def test_list_pages(org: Organization, alice: Any, settings: Any) -> None:
    settings.PAGE_SIZE = 2
    for name in ("Alpha", "Beta", "Gamma"):
        make_record("account", org, alice, name=name)
    client = client_for(alice)

    first, second = client.get("/crm/accounts/", {"q": "a"}), client.get("/crm/accounts/", {"q": "a", "page": 2})

    assert listed(first) == ["Alpha", "Beta"]
    assert listed(second) == ["Gamma"]
    html = first.content.decode()
    assert "?q=a&amp;page=2" in html
    assert "Page 1 of 2" in html


def test_list_links_each_record_and_shows_choices_in_words(org: Organization, alice: Any) -> None:
    lead = make_record("lead", org, alice, status="disqualified")
    html = client_for(alice).get("/crm/leads/").content.decode()
    assert f'href="/crm/leads/{lead.pk}/"' in html
    assert "Disqualified" in html


# Navigation and forms


@pytest.mark.parametrize(("persona", "shown"), [("alice", True), ("admin", True), ("auditor", False)])
def test_navigation_offers_the_crm_pages_to_those_who_may_use_them(
    request: pytest.FixtureRequest, persona: str, shown: bool
) -> None:
    html = client_for(request.getfixturevalue(persona)).get("/", follow=True).content.decode()
    nav = html.split("</nav>", 1)[0]
    for path in ("/crm/accounts/", "/crm/contacts/", "/crm/leads/", "/crm/appointments/", "/crm/tasks/"):
        assert (f'href="{path}"' in nav) is shown


def test_create_without_csrf_token_is_refused(org: Organization, alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    data = {"organization": org.pk, **POSTS["lead"]}

    assert client.post("/crm/leads/new/", data).status_code == 403
    assert not Lead.objects.exists()

    html = client.get("/crm/leads/new/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token
    assert client.post("/crm/leads/new/", {**data, "csrfmiddlewaretoken": token.group(1)}).status_code == 302
    assert Lead.objects.get().owner == alice


def test_the_edit_page_carries_the_version(org: Organization, alice: Any) -> None:
    appointment = make_record("appointment", org, alice)
    Appointment.objects.get(pk=appointment.pk).save()
    html = client_for(alice).get(url("appointment", "edit", appointment)).content.decode()
    assert re.search(r'<input type="hidden" name="version" value="2"', html)
