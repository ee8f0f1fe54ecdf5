"""My sync filters: list, create, edit, activate, deactivate, delete, preview; templates and reset."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from crm.access import visible_records
from crm.filters import filter_q
from crm.models import Contact, SyncFilter
from mailboxes.models import Organization
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

SMITHS = {"match": "all", "rules": [{"field": "last_name", "operator": "contains", "value": "smith"}]}
OWN_SMITHS = {
    "match": "all",
    "rules": [
        {"field": "owner", "operator": "is_me", "value": None},
        {"field": "last_name", "operator": "contains", "value": "smith"},
    ],
}
MY_SMITHS = {
    "match": "all",
    "rules": [
        {"field": "owner", "operator": "is_me", "value": None},
        {
            "match": "any",
            "rules": [
                {"field": "last_name", "operator": "eq", "value": "Smith"},
                {"field": "last_name", "operator": "contains", "value": "smithers"},
            ],
        },
    ],
}


def events(action: str) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(action=action).values_list("actor_name", "object_id"))


def messages_of(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def new_filter(org: Organization, rules: Any = SMITHS, record_type: str = "contact", **extra: Any) -> dict[str, Any]:
    data = {"organization": str(org.pk), "record_type": record_type, "name": "Smiths", "enabled": "on"}
    return {**data, "rules": json.dumps(rules), **extra}


def alices(org: Organization, alice: Any) -> Any:
    return SyncFilter.objects.filter(user=alice, organization=org)


def matching(alice: Any, org: Organization, model: Any = Contact) -> set[str]:
    q = filter_q(alice, org, model.__name__.lower())
    return set() if q is None else {str(c) for c in model.objects.filter(q)}


# The list


def test_it_lists_the_users_filters_by_record_type(alice_client: Client, bob: Any) -> None:
    SyncFilter.objects.filter(user=bob).update(name="Bob's secret filter")

    response = alice_client.get("/me/filters/")

    assert response.status_code == 200
    page = response.content.decode()
    for name in ("My active contacts", "My appointments from 30 days ago", "My open tasks"):
        assert name in page
    assert "Owner is me and Active equals Yes" in page  # the conditions in words
    assert "Bob&#x27;s secret filter" not in page
    assert "Changes take effect at the next sync of your mailbox." in page
    assert "/me/filters/templates/" not in page  # for administrators only


def test_it_says_when_a_record_type_does_not_sync(alice_client: Client, org: Any, alice: Any) -> None:
    alices(org, alice).filter(record_type="task").update(enabled=False)

    page = alice_client.get("/me/filters/").content.decode()

    assert 'id="no-active-task"' in page
    assert 'id="no-active-contact"' not in page


# Create and edit


def test_it_creates_a_filter_and_audits_it(alice_client: Client, org: Any, alice: Any) -> None:
    response = alice_client.post("/me/filters/new/", new_filter(org, MY_SMITHS), follow=True)

    created = alices(org, alice).get(name="Smiths")
    assert (created.record_type, created.enabled, created.rules) == ("contact", True, MY_SMITHS)
    assert "It takes effect at the next sync of your mailbox." in messages_of(response)
    assert ("alice", str(created.pk)) in events("sync_filter.created")


def test_invalid_rules_name_the_row_and_save_nothing(alice_client: Client, org: Any, alice: Any) -> None:
    rules = {
        "match": "all",
        "rules": [
            {"field": "owner", "operator": "is_me", "value": None},
            {"match": "any", "rules": [{"field": "last_name", "operator": "is_me", "value": None}]},
        ],
    }
    before = alices(org, alice).count()
    audited = AuditEvent.objects.count()

    response = alice_client.post("/me/filters/new/", new_filter(org, rules))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="rules-errors"' in page
    assert "Rule 2.1: operator &#x27;is_me&#x27; does not apply to last_name" in page
    assert alices(org, alice).count() == before
    assert AuditEvent.objects.count() == audited


def test_rules_that_are_not_json_say_where(alice_client: Client, org: Any, alice: Any) -> None:
    response = alice_client.post("/me/filters/new/", {**new_filter(org), "rules": '{"match": "all",'})

    assert "The rules are not valid JSON (line 1, column" in response.content.decode()
    assert not alices(org, alice).filter(name="Smiths").exists()


def test_the_new_filter_page_has_the_row_editor_and_its_data(alice_client: Client) -> None:
    page = alice_client.get("/me/filters/new/?record_type=task").content.decode()

    assert 'id="rule-editor"' in page
    assert 'id="rule-editor-spec" type="application/json"' in page
    assert "/static/js/selfservice.js" in page
    assert '<option value="task" selected>' in page
    assert "A saved filter takes effect at the next sync of your mailbox." in page


def test_it_edits_a_filter_and_audits_the_change(alice_client: Client, org: Any, alice: Any) -> None:
    sync_filter = alices(org, alice).get(record_type="contact")
    data = {"name": "Smiths only", "enabled": "on", "rules": json.dumps(OWN_SMITHS)}

    response = alice_client.post(f"/me/filters/{sync_filter.pk}/edit/", data)

    assert (response.status_code, response.url) == (302, "/me/filters/")
    sync_filter.refresh_from_db()
    assert (sync_filter.name, sync_filter.rules, sync_filter.record_type) == ("Smiths only", OWN_SMITHS, "contact")
    event = AuditEvent.objects.filter(action="sync_filter.updated").get()
    assert event.actor_name == "alice"
    assert event.changes["name"] == ["My active contacts", "Smiths only"]


def test_the_edit_page_shows_the_stored_rules_as_json(alice_client: Client, org: Any, alice: Any) -> None:
    sync_filter = alices(org, alice).get(record_type="contact")

    page = alice_client.get(f"/me/filters/{sync_filter.pk}/edit/").content.decode()

    assert "&quot;is_me&quot;" in page
    assert 'data-record-type="contact"' in page


# Activate, deactivate, delete


def test_deactivate_and_activate_change_what_syncs(
    alice_client: Client, org: Any, alice: Any, contacts: dict[str, Contact]
) -> None:
    sync_filter = alices(org, alice).get(record_type="contact")
    assert matching(alice, org) == {"Ann Smith", "Sam Smithers", "Zed Jones"}

    response = alice_client.post(f"/me/filters/{sync_filter.pk}/deactivate/", follow=True)

    assert "takes effect at the next sync" in messages_of(response)
    assert filter_q(alice, org, "contact") is None
    alice_client.post(f"/me/filters/{sync_filter.pk}/activate/")
    assert matching(alice, org) == {"Ann Smith", "Sam Smithers", "Zed Jones"}
    changes = [e.changes for e in AuditEvent.objects.filter(action="sync_filter.updated").order_by("time")]
    assert changes == [{"enabled": [True, False]}, {"enabled": [False, True]}]


def test_a_new_filter_widens_what_syncs(
    alice_client: Client, org: Any, alice: Any, contacts: dict[str, Contact]
) -> None:
    alice_client.post("/me/filters/new/", new_filter(org, OWN_SMITHS))

    assert "Old Smithson" in matching(alice, org)


def test_delete_asks_first_then_deletes_and_audits(alice_client: Client, org: Any, alice: Any) -> None:
    sync_filter = alices(org, alice).get(record_type="task")

    confirm = alice_client.get(f"/me/filters/{sync_filter.pk}/delete/")
    assert confirm.status_code == 200
    assert "Owner is me and Status equals Open" in confirm.content.decode()
    assert SyncFilter.objects.filter(pk=sync_filter.pk).exists()

    response = alice_client.post(f"/me/filters/{sync_filter.pk}/delete/")

    assert (response.status_code, response.url) == (302, "/me/filters/")
    assert not SyncFilter.objects.filter(pk=sync_filter.pk).exists()
    assert events("sync_filter.deleted") == [("alice", str(sync_filter.pk))]


# Preview


def test_the_preview_counts_what_filter_q_selects_of_the_users_records(
    alice_client: Client, org: Any, alice: Any, contacts: dict[str, Contact]
) -> None:
    alices(org, alice).update(enabled=False)
    data = {**new_filter(org, OWN_SMITHS), "fragment": "1"}

    response = alice_client.post("/me/filters/preview/", data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert '<strong id="preview-count">3</strong>' in page
    for name in ("Ann Smith", "Sam Smithers", "Old Smithson"):
        assert name in page
    assert "Bo Smith" not in page  # Bob's record: not Alice's to see
    # The same count as the engine's filter, on the records Alice may see, once the filter is saved.
    alice_client.post("/me/filters/new/", new_filter(org, OWN_SMITHS))
    assert visible_records(alice, Contact).filter(filter_q(alice, org, "contact")).count() == 3


def test_the_preview_of_an_existing_filter_uses_its_record_type(
    alice_client: Client, org: Any, alice: Any, contacts: dict[str, Contact]
) -> None:
    sync_filter = alices(org, alice).get(record_type="contact")
    data = {"filter": str(sync_filter.pk), "rules": json.dumps(sync_filter.rules), "fragment": "1"}

    page = alice_client.post("/me/filters/preview/", data).content.decode()

    expected = visible_records(alice, Contact).filter(filter_q(alice, org, "contact")).count()
    assert f'<strong id="preview-count">{expected}</strong>' in page


def test_a_users_filter_keeps_to_their_own_records(alice_client: Client, org: Any, alice: Any) -> None:
    # The engine syncs whatever a filter selects: without "Owner is me", Bob's records would reach Alice's mailbox.
    any_owner = {"match": "any", "rules": [*MY_SMITHS["rules"]]}

    for rules in (SMITHS, any_owner):
        response = alice_client.post("/me/filters/new/", new_filter(org, rules))
        assert "you can sync only your own records" in response.content.decode()
        preview = alice_client.post("/me/filters/preview/", {**new_filter(org, rules), "fragment": "1"})
        assert "you can sync only your own records" in preview.content.decode()
    assert not alices(org, alice).filter(name="Smiths").exists()


def test_an_administrators_own_filter_may_select_any_record(admin_client: Client, org: Any, admin: Any) -> None:
    response = admin_client.post("/me/filters/new/", new_filter(org, SMITHS))

    assert response.status_code == 302
    assert SyncFilter.objects.filter(user=admin, name="Smiths").exists()


def test_the_preview_names_the_bad_row(alice_client: Client, org: Any) -> None:
    rules = {"match": "all", "rules": [{"field": "shoe_size", "operator": "eq", "value": 42}]}

    page = alice_client.post("/me/filters/preview/", {**new_filter(org, rules), "fragment": "1"}).content.decode()

    assert 'id="preview-errors"' in page
    assert "Rule 1: unknown field &#x27;shoe_size&#x27;" in page


def test_the_preview_button_without_javascript_shows_the_editor_again(
    alice_client: Client, org: Any, alice: Any, contacts: dict[str, Contact]
) -> None:
    response = alice_client.post("/me/filters/preview/", new_filter(org, OWN_SMITHS, name="Draft"))

    page = response.content.decode()
    assert '<form method="post" action="/me/filters/new/"' in page
    assert 'value="Draft"' in page
    assert '<strong id="preview-count">3</strong>' in page
    assert not alices(org, alice).filter(name="Draft").exists()


def test_the_preview_refuses_an_organization_of_someone_else(alice_client: Client, other_org: Organization) -> None:
    page = alice_client.post("/me/filters/preview/", {**new_filter(other_org), "fragment": "1"}).content.decode()

    assert 'id="preview-errors"' in page


# Another user's filters


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "edit/"),
        ("post", "edit/"),
        ("post", "activate/"),
        ("post", "deactivate/"),
        ("get", "delete/"),
        ("post", "delete/"),
    ],
)
def test_someone_elses_filter_is_a_404(alice_client: Client, bob_filter: SyncFilter, method: str, path: str) -> None:
    response = getattr(alice_client, method)(f"/me/filters/{bob_filter.pk}/{path}", {"name": "x", "rules": "{}"})

    assert response.status_code == 404
    bob_filter.refresh_from_db()
    assert (bob_filter.name, bob_filter.enabled) == ("My active contacts", True)


def test_someone_elses_filter_cannot_be_previewed(alice_client: Client, bob_filter: SyncFilter) -> None:
    response = alice_client.post("/me/filters/preview/", {"filter": str(bob_filter.pk), "rules": "{}"})

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["activate/", "deactivate/"])
def test_actions_refuse_get(alice_client: Client, org: Any, alice: Any, path: str) -> None:
    sync_filter = alices(org, alice).first()

    assert alice_client.get(f"/me/filters/{sync_filter.pk}/{path}").status_code == 405


def test_the_preview_refuses_get(alice_client: Client) -> None:
    assert alice_client.get("/me/filters/preview/").status_code == 405


def test_filters_of_a_second_organization_show_which_organization(
    alice_client: Client, org: Any, second_org: Organization
) -> None:
    page = alice_client.get("/me/filters/").content.decode()

    assert "<th>Organization</th>" in page
    assert "Initech" in page


# Templates (administrators)


def test_administrators_edit_the_organizations_templates(admin_client: Client, org: Any, admin: Any) -> None:
    page = admin_client.get("/me/filters/templates/").content.decode()
    assert "Sync filter templates" in page

    response = admin_client.post("/me/filters/templates/new/", new_filter(org, SMITHS, name="All Smiths"))

    assert (response.status_code, response.url) == (302, "/me/filters/templates/")
    template = SyncFilter.objects.get(name="All Smiths")
    assert (template.user, template.organization) == (None, org)
    assert ("admin", str(template.pk)) in events("sync_filter.created")
    page = admin_client.get("/me/filters/templates/").content.decode()
    assert "All Smiths" in page and "My active contacts" not in page  # templates only, not admin's own

    admin_client.post(f"/me/filters/{template.pk}/deactivate/")
    template.refresh_from_db()
    assert not template.enabled
    edit_page = admin_client.get(f"/me/filters/{template.pk}/edit/").content.decode()
    assert 'name="template" value="1"' in edit_page
    assert "History" in edit_page


@pytest.mark.parametrize("persona", ["alice", "approver", "auditor", "charlie"])
def test_the_templates_page_is_for_administrators_only(request: Any, persona: str) -> None:
    client = client_for(request.getfixturevalue(persona))

    assert client.get("/me/filters/templates/").status_code == 403
    assert client.get("/me/filters/templates/new/").status_code == 403
    assert client.get("/me/filters/templates/reset/").status_code == 403


def test_a_template_is_a_403_for_members_and_a_404_for_others(alice_client: Client, org: Any, outsider: Any) -> None:
    template = SyncFilter.objects.create(organization=org, name="Tmpl", record_type="contact", rules=SMITHS)

    assert alice_client.get(f"/me/filters/{template.pk}/edit/").status_code == 403
    assert alice_client.post(f"/me/filters/{template.pk}/deactivate/").status_code == 403
    assert alice_client.post("/me/filters/preview/", {"filter": str(template.pk), "rules": "{}"}).status_code == 403
    assert client_for(outsider).get(f"/me/filters/{template.pk}/edit/").status_code == 404
    assert client_for(outsider).get("/me/filters/templates/").content.decode().count("Tmpl") == 0


def test_a_new_template_cannot_be_previewed_by_a_plain_user(alice_client: Client, org: Any) -> None:
    response = alice_client.post("/me/filters/preview/", {**new_filter(org), "template": "1"})

    assert response.status_code == 403


def test_an_administrator_resets_a_members_filters_to_the_templates(admin_client: Client, org: Any, alice: Any) -> None:
    template = SyncFilter.objects.create(organization=org, name="Team contacts", record_type="contact", rules=SMITHS)
    from mailboxes.models import Membership

    membership = Membership.objects.get(user=alice, organization=org)
    old = set(alices(org, alice).values_list("pk", flat=True))

    confirm = admin_client.get(f"/me/filters/templates/reset/?membership={membership.pk}")
    assert confirm.status_code == 200
    assert "Team contacts" in confirm.content.decode()
    assert set(alices(org, alice).values_list("pk", flat=True)) == old  # asking changes nothing

    response = admin_client.post("/me/filters/templates/reset/", {"membership": str(membership.pk)}, follow=True)

    assert "3 deleted, 1 copied" in messages_of(response)
    copy = alices(org, alice).get()
    assert (copy.name, copy.rules, copy.pk in old) == (template.name, SMITHS, False)
    assert {pk for _, pk in events("sync_filter.deleted")} == {str(pk) for pk in old}
    assert ("admin", str(copy.pk)) in events("sync_filter.created")


def test_reset_refuses_a_member_of_another_organization(
    admin_client: Client, other_org: Organization, outsider: Any
) -> None:
    from mailboxes.models import Membership

    membership = Membership.objects.get(user=outsider)
    before = SyncFilter.objects.filter(user=outsider).count()

    response = admin_client.post("/me/filters/templates/reset/", {"membership": str(membership.pk)}, follow=True)

    assert "Choose a member of an organization you administer." in messages_of(response)
    assert SyncFilter.objects.filter(user=outsider).count() == before
