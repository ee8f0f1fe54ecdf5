"""Mailbox pages: list (search, filters, sort, pages), create, edit, detail, delete (STYLE.md 10)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from audit.log import MASK, MASK_CHANGED, Actor
from audit.models import AuditEvent
from mailboxes.models import ApprovalStatus, Mailbox, Membership, Organization, Role, TestStatus
from tests.conftest import client_for, make_mailbox, make_profile, make_user

pytestmark = pytest.mark.django_db


def mailbox_data(org: Organization, user: Any, address: str, profile: Any, **overrides: Any) -> dict[str, Any]:
    """A valid POST of the mailbox form; None/False drop a field (an unticked box)."""
    data: dict[str, Any] = {
        "organization": org.pk,
        "owner_type": "user",
        "user": user.pk if user else "",
        "queue_name": "",
        "address": address,
        "profile": profile.pk if profile else "",
        "incoming_method": "server_side",
        "outgoing_method": "server_side",
        "act_method": "server_side",
        "tracking_rule": "replies",
        "username": "",
        "password": "",
        "is_active": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None and v is not False}


def edit_data(mailbox: Mailbox, **overrides: Any) -> dict[str, Any]:
    """The POST of the edit page as rendered for ``mailbox`` (password left empty)."""
    data = mailbox_data(
        mailbox.organization,
        mailbox.user,
        mailbox.address,
        mailbox.profile,
        owner_type=mailbox.owner_type,
        queue_name=mailbox.queue_name,
        incoming_method=mailbox.incoming_method,
        outgoing_method=mailbox.outgoing_method,
        act_method=mailbox.act_method,
        tracking_rule=mailbox.tracking_rule,
        username=mailbox.username,
        is_active="on" if mailbox.is_active else None,
    )
    data.pop("organization")
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None and v is not False}


@pytest.fixture
def admin_client(admin: Any) -> Client:
    return client_for(admin)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def listed(response: Any) -> list[str]:
    return [str(m) for m in response.context["page"].object_list]


def own_credentials_profile(org: Organization) -> Any:
    return make_profile(org, "Per-mailbox", credentials_source="mailbox", username="", password="")


# List


@pytest.fixture
def several(
    org: Organization, alice_mailbox: Mailbox, bob: Any, profile: Any, pop3_profile: Any, other_mailbox: Mailbox
) -> dict[str, Mailbox]:
    """alice (Exchange, pending), bob (POP3, approved, failed test), a forward queue mailbox, and Globex's gina."""
    carol = make_user("carol", first_name="Carol", last_name="Smith")
    bobs = make_mailbox(
        org, bob, "b.builder@example.com", pop3_profile, act_method="none", test_overall=TestStatus.FAILURE
    )
    bobs.approve(Actor.system())
    queue = make_mailbox(
        org,
        None,
        "support@example.com",
        profile,
        owner_type="queue",
        queue_name="Support desk",
        incoming_method="forward_mailbox",
        outgoing_method="none",
        act_method="client",
        test_overall=TestStatus.SUCCESS,
    )
    return {"alice": alice_mailbox, "bob": bobs, "queue": queue, "gina": other_mailbox, "carol_user": carol}


def test_list_shows_own_organizations_mailboxes_only(admin_client: Client, several: dict) -> None:
    response = admin_client.get("/mailboxes/")
    assert response.status_code == 200
    assert listed(response) == ["alice@example.com", "b.builder@example.com", "support@example.com"]
    assert "gina@globex.example" not in response.content.decode()


def test_list_never_shows_another_organizations_mailbox_even_when_searched(
    admin_client: Client, several: dict, other_profile: Any
) -> None:
    assert listed(admin_client.get("/mailboxes/", {"q": "gina"})) == []
    # Another organization's profile is no valid choice: the filter is ignored, the list stays ours.
    response = admin_client.get("/mailboxes/", {"profile": other_profile.pk})
    assert "gina@globex.example" not in listed(response)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ALICE@", ["alice@example.com"]),
        ("builder", ["b.builder@example.com"]),
        ("Bob", ["b.builder@example.com"]),  # the user's first name
        ("alice", ["alice@example.com"]),
        ("support desk", ["support@example.com"]),  # the queue's name
        ("nobody-has-this", []),
    ],
)
def test_list_search(admin_client: Client, several: dict, query: str, expected: list[str]) -> None:
    assert listed(admin_client.get("/mailboxes/", {"q": query})) == expected


def test_list_filters_by_profile(admin_client: Client, several: dict, pop3_profile: Any) -> None:
    assert listed(admin_client.get("/mailboxes/", {"profile": pop3_profile.pk})) == ["b.builder@example.com"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"approval": "pending"}, ["alice@example.com", "support@example.com"]),
        ({"approval": "approved"}, ["b.builder@example.com"]),
        ({"approval": "rejected"}, []),
        ({"status": "failure"}, ["b.builder@example.com"]),
        ({"status": "success"}, ["support@example.com"]),
        ({"status": "not_run"}, ["alice@example.com"]),
        ({"incoming": "forward_mailbox"}, ["support@example.com"]),
        ({"incoming": "server_side"}, ["alice@example.com", "b.builder@example.com"]),
        ({"outgoing": "none"}, ["support@example.com"]),
        ({"act": "none"}, ["b.builder@example.com"]),
        ({"act": "client"}, ["support@example.com"]),
        ({"approval": "pending", "incoming": "server_side"}, ["alice@example.com"]),
        ({"approval": "bogus"}, ["alice@example.com", "b.builder@example.com", "support@example.com"]),
    ],
)
def test_list_filters(admin_client: Client, several: dict, params: dict, expected: list[str]) -> None:
    response = admin_client.get("/mailboxes/", params)
    assert response.status_code == 200
    assert listed(response) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("address", ["alice@example.com", "b.builder@example.com", "support@example.com"]),
        ("-address", ["support@example.com", "b.builder@example.com", "alice@example.com"]),
        # by user name: the queue has no user and sorts first or last depending on the database
        ("owner", ["alice@example.com", "b.builder@example.com"]),
        ("-owner", ["b.builder@example.com", "alice@example.com"]),
    ],
)
def test_list_sorts(admin_client: Client, several: dict, sort: str, expected: list[str]) -> None:
    result = [a for a in listed(admin_client.get("/mailboxes/", {"sort": sort})) if a in expected]
    assert result == expected


def test_list_sort_links_toggle_direction_and_keep_filters(admin_client: Client, several: dict) -> None:
    html = admin_client.get("/mailboxes/", {"sort": "address", "approval": "pending"}).content.decode()
    assert "?approval=pending&amp;sort=-address" in html
    assert "?approval=pending&amp;sort=owner" in html


def test_list_pages(admin_client: Client, several: dict, settings: Any) -> None:
    settings.PAGE_SIZE = 2
    first = admin_client.get("/mailboxes/", {"sort": "address"})
    second = admin_client.get("/mailboxes/", {"sort": "address", "page": 2})

    assert listed(first) == ["alice@example.com", "b.builder@example.com"]
    assert listed(second) == ["support@example.com"]
    assert first.context["page"].paginator.count == 3
    assert "?sort=address&amp;page=2" in first.content.decode()
    assert "Page 1 of 2" in first.content.decode()


def test_list_sorts_by_owner_name_users_and_queues_together(
    admin_client: Client, several: dict, org: Organization, profile: Any
) -> None:
    make_mailbox(org, None, "archive@example.com", profile, owner_type="queue", queue_name="archive")
    make_mailbox(org, None, "zulu@example.com", profile, owner_type="queue", queue_name="Zulu")
    # Alice, archive (a queue, lower case), Bob, Support desk (a queue), Zulu (a queue)
    expected = [
        "alice@example.com",
        "archive@example.com",
        "b.builder@example.com",
        "support@example.com",
        "zulu@example.com",
    ]
    assert listed(admin_client.get("/mailboxes/", {"sort": "owner"})) == expected
    assert listed(admin_client.get("/mailboxes/", {"sort": "-owner"})) == expected[::-1]


def test_list_sorts_users_by_full_name_as_shown(admin_client: Client, org: Organization, profile: Any) -> None:
    """ "Carol Smith" shows her full name, "zed" only the user name: they sort as shown."""
    carol = make_user("aaa-carol", first_name="Carol", last_name="Smith")
    zed = make_user("zed")
    for user in (carol, zed):
        Membership.objects.create(user=user, organization=org, role=Role.USER)
    make_mailbox(org, carol, "carol@example.com", profile)
    make_mailbox(org, zed, "zed@example.com", profile)
    make_mailbox(org, None, "desk@example.com", profile, owner_type="queue", queue_name="Desk")
    assert listed(admin_client.get("/mailboxes/", {"sort": "owner"})) == [
        "carol@example.com",
        "desk@example.com",
        "zed@example.com",
    ]


def header(html: str, label: str) -> str:
    match = re.search(r"<th[^>]*>(?:(?!</th>).)*>" + re.escape(label) + r"(?:(?!</th>).)*</th>", html, re.S)
    assert match, label
    return match.group(0)


def test_list_headers_show_the_sort_direction(admin_client: Client, several: dict) -> None:
    html = admin_client.get("/mailboxes/").content.decode()
    assert 'aria-sort="ascending"' in header(html, "Email address")
    assert "▲" in header(html, "Email address")
    assert "aria-sort" not in header(html, "Owner")

    html = admin_client.get("/mailboxes/", {"sort": "-owner"}).content.decode()
    owner = header(html, "Owner")
    assert 'aria-sort="descending"' in owner
    assert "▼" in owner
    assert 'href="?sort=owner"' in owner
    assert "aria-sort" not in header(html, "Email address")
    assert html.count("aria-sort=") == 1


def test_list_explains_act(admin_client: Client, several: dict) -> None:
    html = admin_client.get("/mailboxes/").content.decode()
    assert '<abbr title="Appointments, contacts and tasks">ACT</abbr>' in html
    legend = html.split('id="legend"', 1)[1].split("</p>", 1)[0]
    assert "appointments, contacts and tasks" in legend


def methods(html: str) -> list[str]:
    cells = re.findall(r'<td class="small methods">(.*?)</td>', html, re.S)
    return [
        " | ".join(re.sub(r"<[^>]+>", "", div).strip() for div in re.findall(r"<div[^>]*>(.*?)</div>", c))
        for c in cells
    ]


def test_list_groups_the_channels_by_method(admin_client: Client, several: dict) -> None:
    html = admin_client.get("/mailboxes/", {"sort": "address"}).content.decode()
    assert methods(html) == [
        "Server-side: incoming, outgoing, ACT",
        "Server-side: incoming, outgoing | None: ACT",
        "Forward mailbox: incoming | None: outgoing | Client: ACT",
    ]
    assert "Server-side synchronization" not in html.split('id="mailboxes"', 1)[1].split("</table>", 1)[0]


def test_list_shows_test_status_as_a_badge_like_approval(admin_client: Client, several: dict) -> None:
    html = admin_client.get("/mailboxes/", {"sort": "address"}).content.decode()
    assert '<span class="badge text-bg-secondary">Not run</span>' in html
    assert '<span class="badge text-bg-danger">Failure</span>' in html
    assert '<span class="badge text-bg-success">Success</span>' in html
    assert '<span class="badge text-bg-success">Approved</span>' in html


def test_list_table_scrolls_on_its_own(admin_client: Client, several: dict) -> None:
    html = admin_client.get("/mailboxes/").content.decode()
    assert '<div class="table-responsive">\n<table class="table table-striped" id="mailboxes">' in html


def test_list_offers_the_profile_change_for_the_selected_and_all_matching(
    admin_client: Client, several: dict, profile: Any
) -> None:
    html = admin_client.get("/mailboxes/", {"profile": profile.pk}).content.decode()
    assert 'formaction="/mailboxes/change-profile/"' in html
    link = re.search(r'href="(/mailboxes/change-profile/\?[^"]+)" id="change-profile-all"', html)
    assert link
    assert f"all_matching=1&amp;profile={profile.pk}&amp;next=" in link.group(1)
    assert "Change server profile of all 2 matching mailboxes" in html


# Create


def test_create_form_preselects_the_default_profile(admin_client: Client, org: Organization) -> None:
    default = make_profile(org, "Default", is_default=True)
    form = admin_client.get("/mailboxes/new/").context["form"]
    assert form.initial["profile"] == default.pk
    assert form["organization"].initial == org.pk


def test_create_saves_pending_audits_and_redirects(
    admin_client: Client, org: Organization, alice: Any, profile: Any, admin: Any
) -> None:
    response = admin_client.post(
        "/mailboxes/new/", mailbox_data(org, alice, " Alice@Example.COM ", profile), REMOTE_ADDR="198.51.100.4"
    )

    mailbox = Mailbox.objects.get()
    assert response.status_code == 302
    assert response.url == f"/mailboxes/{mailbox.pk}/"
    assert mailbox.address == "alice@example.com"
    assert mailbox.user == alice
    assert mailbox.approval_status == ApprovalStatus.PENDING
    event = AuditEvent.objects.get(action="mailbox.created")
    assert event.object_id == str(mailbox.pk)
    assert (event.actor, event.ip, event.organization_id) == (admin, "198.51.100.4", org.pk)
    assert event.changes["address"] == [None, "alice@example.com"]


def test_create_is_approved_at_once_where_no_approval_is_required(
    admin_client: Client, org: Organization, alice: Any, profile: Any
) -> None:
    org.require_approval_user_mailboxes = False
    org.save()
    admin_client.post("/mailboxes/new/", mailbox_data(org, alice, "alice@example.com", profile))
    assert Mailbox.objects.get().approval_status == ApprovalStatus.APPROVED


def test_create_queue_mailbox(admin_client: Client, org: Organization, profile: Any) -> None:
    data = mailbox_data(org, None, "sales@example.com", profile, owner_type="queue", queue_name="Sales")
    response = admin_client.post("/mailboxes/new/", data)
    assert response.status_code == 302
    mailbox = Mailbox.objects.get()
    assert (mailbox.owner_name, mailbox.user, mailbox.approval_status) == ("Sales", None, ApprovalStatus.PENDING)


def assert_refused(response: Any, field: str, text: str = "") -> None:
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    if text:
        assert text in " ".join(errors[field])


def test_it_rejects_duplicate_address_asking_to_confirm_the_remap(
    admin_client: Client, org: Organization, bob: Any, profile: Any, alice_mailbox: Mailbox
) -> None:
    response = admin_client.post("/mailboxes/new/", mailbox_data(org, bob, "ALICE@example.com", profile))

    assert_refused(response, "address", "already mapped to the mailbox of Alice. Tick the box below")
    assert Mailbox.objects.count() == 1
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.address == "alice@example.com"
    assert not AuditEvent.objects.filter(action__startswith="mailbox.").exists()


def test_confirmed_remap_moves_the_address_and_audits_each_step(
    admin_client: Client, org: Organization, bob: Any, profile: Any, alice_mailbox: Mailbox, admin: Any
) -> None:
    alice_mailbox.enabled_incoming = True
    alice_mailbox.save()
    data = mailbox_data(org, bob, "Alice@Example.com", profile, confirm_remap="on")

    response = admin_client.post("/mailboxes/new/", data)

    assert response.status_code == 302
    alice_mailbox.refresh_from_db()
    bobs = Mailbox.objects.get(user=bob)
    assert alice_mailbox.address == ""
    assert alice_mailbox.approval_status == ApprovalStatus.EMPTY
    assert not alice_mailbox.enabled_incoming
    assert bobs.address == "alice@example.com"
    assert bobs.approval_status == ApprovalStatus.PENDING
    released = AuditEvent.objects.get(action="mailbox.address_released")
    assert released.object_id == str(alice_mailbox.pk)
    assert released.changes["address"] == ["alice@example.com", ""]
    remapped = AuditEvent.objects.get(action="mailbox.address_remapped")
    assert remapped.object_id == str(bobs.pk)
    assert remapped.changes["address"] == ["alice@example.com (Alice)", "alice@example.com (Bob)"]
    assert remapped.actor == admin
    assert AuditEvent.objects.filter(action="mailbox.created", object_id=str(bobs.pk)).count() == 1


def test_confirmed_remap_says_from_whose_mailbox_the_address_came(
    admin_client: Client, org: Organization, bob: Any, profile: Any, alice_mailbox: Mailbox
) -> None:
    data = mailbox_data(org, bob, "alice@example.com", profile, confirm_remap="on")

    response = admin_client.post("/mailboxes/new/", data, follow=True)

    assert messages_of(response) == [
        "Mailbox alice@example.com created. Its address was moved here from the mailbox of Alice, "
        "which has no address now."
    ]


def test_it_refuses_an_address_mapped_in_another_organization_even_when_confirmed(
    admin_client: Client, org: Organization, bob: Any, profile: Any, other_mailbox: Mailbox
) -> None:
    for confirm in (None, "on"):
        data = mailbox_data(org, bob, "gina@globex.example", profile, confirm_remap=confirm)
        response = admin_client.post("/mailboxes/new/", data)
        assert_refused(response, "address")
        # Only that it is unavailable: not that (or where) another organization uses it.
        assert response.context["form"].errors["address"] == ["This address is not available."]
        assert "organization" not in response.context["form"].errors["address"][0]
        assert "Globex" not in response.content.decode()
    other_mailbox.refresh_from_db()
    assert other_mailbox.address == "gina@globex.example"
    assert not Mailbox.objects.filter(user=bob).exists()
    assert not AuditEvent.objects.filter(action__startswith="mailbox.").exists()


def test_it_refuses_a_second_mailbox_for_the_same_user(
    admin_client: Client, org: Organization, alice: Any, profile: Any, alice_mailbox: Mailbox
) -> None:
    response = admin_client.post("/mailboxes/new/", mailbox_data(org, alice, "alice.two@example.com", profile))
    assert_refused(response, "user", "This user has a mailbox already")
    assert Mailbox.objects.count() == 1


@pytest.mark.parametrize("address", ["not-an-address", "alice@", "a b@example.com"])
def test_it_rejects_an_invalid_address(
    admin_client: Client, org: Organization, alice: Any, profile: Any, address: str
) -> None:
    assert_refused(admin_client.post("/mailboxes/new/", mailbox_data(org, alice, address, profile)), "address")
    assert not Mailbox.objects.exists()


def test_it_rejects_act_server_side_on_a_pop3_profile(
    admin_client: Client, org: Organization, alice: Any, pop3_profile: Any
) -> None:
    response = admin_client.post("/mailboxes/new/", mailbox_data(org, alice, "alice@example.com", pop3_profile))
    assert_refused(response, "act_method", "POP3/IMAP profile carries email only")
    assert not Mailbox.objects.exists()


def test_it_accepts_a_pop3_profile_without_act(
    admin_client: Client, org: Organization, alice: Any, pop3_profile: Any
) -> None:
    data = mailbox_data(org, alice, "alice@example.com", pop3_profile, act_method="none")
    assert admin_client.post("/mailboxes/new/", data).status_code == 302
    assert Mailbox.objects.get().profile == pop3_profile


def test_it_rejects_a_forward_mailbox_that_sends(
    admin_client: Client, org: Organization, alice: Any, profile: Any
) -> None:
    data = mailbox_data(org, alice, "alice@example.com", profile, incoming_method="forward_mailbox")
    assert_refused(admin_client.post("/mailboxes/new/", data), "outgoing_method", "forward mailbox sends no email")
    assert not Mailbox.objects.exists()


def test_it_rejects_server_side_sync_without_a_profile(admin_client: Client, org: Organization, alice: Any) -> None:
    assert_refused(admin_client.post("/mailboxes/new/", mailbox_data(org, alice, "alice@example.com", None)), "profile")
    assert not Mailbox.objects.exists()


def test_it_rejects_another_organizations_profile(
    admin_client: Client, org: Organization, alice: Any, other_profile: Any
) -> None:
    response = admin_client.post("/mailboxes/new/", mailbox_data(org, alice, "alice@example.com", other_profile))
    assert_refused(response, "profile")
    assert not Mailbox.objects.exists()


def test_it_rejects_a_user_of_another_organization(
    admin_client: Client, org: Organization, profile: Any, outsider: Any
) -> None:
    response = admin_client.post("/mailboxes/new/", mailbox_data(org, outsider, "out@example.com", profile))
    assert_refused(response, "user")
    assert not Mailbox.objects.exists()


def test_an_admin_of_two_organizations_cannot_mix_them(
    org: Organization, other_org: Organization, admin: Any, profile: Any, other_profile: Any, outsider: Any
) -> None:
    Membership.add(Actor.system(), admin, other_org, Role.ADMINISTRATOR)
    client = client_for(admin)

    response = client.post("/mailboxes/new/", mailbox_data(org, outsider, "out@example.com", profile))
    assert_refused(response, "user", "member of the mailbox's organization")
    response = client.post("/mailboxes/new/", mailbox_data(other_org, outsider, "out@example.com", profile))
    assert_refused(response, "profile", "server profile of the mailbox's organization")
    assert not Mailbox.objects.exists()

    response = client.post("/mailboxes/new/", mailbox_data(other_org, outsider, "out@example.com", other_profile))
    assert response.status_code == 302
    assert Mailbox.objects.get().organization == other_org


def test_it_rejects_another_organization(
    admin_client: Client, other_org: Organization, alice: Any, profile: Any
) -> None:
    response = admin_client.post("/mailboxes/new/", mailbox_data(other_org, alice, "alice@example.com", profile))
    assert_refused(response, "organization")
    assert not Mailbox.objects.exists()


def test_it_rejects_a_user_mailbox_without_user(admin_client: Client, org: Organization, profile: Any) -> None:
    assert_refused(admin_client.post("/mailboxes/new/", mailbox_data(org, None, "x@example.com", profile)), "user")


def test_a_profile_using_mailbox_credentials_requires_them(admin_client: Client, org: Organization, alice: Any) -> None:
    own = own_credentials_profile(org)
    response = admin_client.post("/mailboxes/new/", mailbox_data(org, alice, "alice@example.com", own))
    assert_refused(response, "username", "own credentials")
    assert_refused(response, "password", "own credentials")
    assert not Mailbox.objects.exists()

    data = mailbox_data(org, alice, "alice@example.com", own, username="alice", password="alice-Mail-pw")
    assert admin_client.post("/mailboxes/new/", data).status_code == 302
    mailbox = Mailbox.objects.get()
    assert (mailbox.username, mailbox.password) == ("alice", "alice-Mail-pw")
    assert AuditEvent.objects.get(action="mailbox.created").changes["password"] == ["", MASK_CHANGED]


# Edit


def test_edit_address_change_returns_to_pending_and_audits_before_and_after(
    admin_client: Client, alice_mailbox: Mailbox, admin: Any, system: Actor
) -> None:
    alice_mailbox.approve(system)
    alice_mailbox = Mailbox.objects.get(pk=alice_mailbox.pk)

    response = admin_client.post(
        f"/mailboxes/{alice_mailbox.pk}/edit/", edit_data(alice_mailbox, address="alice.new@example.com")
    )

    assert response.status_code == 302
    assert response.url == f"/mailboxes/{alice_mailbox.pk}/"
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.address == "alice.new@example.com"
    assert alice_mailbox.approval_status == ApprovalStatus.PENDING
    assert alice_mailbox.approval_changed_by is None
    event = AuditEvent.objects.get(action="mailbox.updated")
    assert event.actor == admin
    assert event.changes["address"] == ["alice@example.com", "alice.new@example.com"]
    assert event.changes["approval_status"] == ["approved", "pending"]


def test_edit_address_change_says_approval_is_pending_again(
    admin_client: Client, alice_mailbox: Mailbox, system: Actor
) -> None:
    alice_mailbox.approve(system)
    alice_mailbox = Mailbox.objects.get(pk=alice_mailbox.pk)
    data = edit_data(alice_mailbox, address="alice.new@example.com")

    response = admin_client.post(f"/mailboxes/{alice_mailbox.pk}/edit/", data, follow=True)

    assert messages_of(response) == [
        "Mailbox alice.new@example.com saved. Its address changed, so approval is pending again."
    ]


def test_edit_of_a_tested_connection_says_the_tests_were_reset(
    admin_client: Client, alice_mailbox: Mailbox, org: Organization, system: Actor
) -> None:
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(
        test_overall=TestStatus.SUCCESS, test_incoming=TestStatus.SUCCESS
    )
    alice_mailbox = Mailbox.objects.get(pk=alice_mailbox.pk)
    other = make_profile(org, "Other")

    response = admin_client.post(
        f"/mailboxes/{alice_mailbox.pk}/edit/", edit_data(alice_mailbox, profile=other.pk), follow=True
    )

    assert messages_of(response) == [
        "Mailbox alice@example.com saved. Its connection changed, so its tests were reset: run Test & Enable again."
    ]


def test_edit_without_address_change_says_saved_only(admin_client: Client, alice_mailbox: Mailbox) -> None:
    data = edit_data(alice_mailbox, tracking_rule="all")
    response = admin_client.post(f"/mailboxes/{alice_mailbox.pk}/edit/", data, follow=True)
    assert messages_of(response) == ["Mailbox alice@example.com saved."]


def test_edit_without_address_change_keeps_the_approval(
    admin_client: Client, alice_mailbox: Mailbox, system: Actor
) -> None:
    alice_mailbox.approve(system)
    alice_mailbox = Mailbox.objects.get(pk=alice_mailbox.pk)
    response = admin_client.post(f"/mailboxes/{alice_mailbox.pk}/edit/", edit_data(alice_mailbox, tracking_rule="all"))
    assert response.status_code == 302
    alice_mailbox.refresh_from_db()
    assert (alice_mailbox.approval_status, alice_mailbox.tracking_rule) == (ApprovalStatus.APPROVED, "all")
    assert AuditEvent.objects.get(action="mailbox.updated").changes == {"tracking_rule": ["replies", "all"]}


def test_edit_keeps_the_organization(admin_client: Client, alice_mailbox: Mailbox, other_org: Organization) -> None:
    data = edit_data(alice_mailbox, organization=other_org.pk)
    assert admin_client.post(f"/mailboxes/{alice_mailbox.pk}/edit/", data).status_code == 302
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.organization.name == "Acme"


def test_edit_password_is_write_only(admin_client: Client, org: Organization, alice: Any) -> None:
    own = own_credentials_profile(org)
    mailbox = make_mailbox(org, alice, "alice@example.com", own, username="alice", password="old-Mail-pw")
    url = f"/mailboxes/{mailbox.pk}/edit/"

    page = admin_client.get(url)
    assert page.status_code == 200
    assert "old-Mail-pw" not in page.content.decode()

    assert admin_client.post(url, edit_data(mailbox, tracking_rule="all")).status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.password == "old-Mail-pw"

    mailbox = Mailbox.objects.get(pk=mailbox.pk)
    assert admin_client.post(url, edit_data(mailbox, password="new-Mail-pw")).status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.password == "new-Mail-pw"
    changes = AuditEvent.objects.filter(action="mailbox.updated").order_by("time")[1].changes
    assert changes == {"password": [MASK, MASK_CHANGED]}


def test_edit_rejects_invalid_values_and_saves_nothing(admin_client: Client, alice_mailbox: Mailbox) -> None:
    response = admin_client.post(
        f"/mailboxes/{alice_mailbox.pk}/edit/", edit_data(alice_mailbox, incoming_method="forward_mailbox")
    )
    assert_refused(response, "outgoing_method")
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.incoming_method == "server_side"
    assert not AuditEvent.objects.filter(action__startswith="mailbox.").exists()


def test_edit_of_another_organizations_mailbox_is_404(admin_client: Client, other_mailbox: Mailbox) -> None:
    url = f"/mailboxes/{other_mailbox.pk}/edit/"
    assert admin_client.get(url).status_code == 404
    assert admin_client.post(url, edit_data(other_mailbox, address="taken@example.com")).status_code == 404
    other_mailbox.refresh_from_db()
    assert other_mailbox.address == "gina@globex.example"


# Detail


def channel_rows(html: str) -> list[tuple[str, ...]]:
    table = html.split('id="channels"', 1)[1].split("</table>", 1)[0]
    return re.findall(
        r"<tr><td>(.*?)</td><td>(.*?)</td><td class=\"status-\w+\">(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table
    )


def test_detail_shows_one_row_per_channel(admin_client: Client, alice_mailbox: Mailbox, system: Actor) -> None:
    alice_mailbox.approve(system)
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(
        test_incoming=TestStatus.SUCCESS, enabled_incoming=True, test_outgoing=TestStatus.FAILURE, act_method="client"
    )

    response = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/")

    assert response.status_code == 200
    assert channel_rows(response.content.decode()) == [
        ("Incoming email", "Server-side synchronization", "Success", "yes", "yes"),
        ("Outgoing email", "Server-side synchronization", "Failure", "no", "no"),
        ("Appointments, contacts and tasks", "Client (desktop)", "Not run", "no", "no"),
    ]


def test_detail_shows_the_history_with_who_approved(
    admin_client: Client, alice_mailbox: Mailbox, approver: Any
) -> None:
    client_for(approver).post(f"/mailboxes/{alice_mailbox.pk}/approve/", REMOTE_ADDR="203.0.113.9")

    response = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/")

    history = list(response.context["history"])
    assert [(e.action, e.actor_name, e.ip) for e in history] == [("mailbox.approved", "approver", "203.0.113.9")]
    html = response.content.decode().split("History", 1)[1]
    assert "approver" in html
    assert "203.0.113.9" in html


def test_detail_has_a_title_of_its_own_and_a_heading_row_that_wraps(
    admin_client: Client, alice_mailbox: Mailbox
) -> None:
    html = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    assert "<title>Mailbox alice@example.com · " in html
    assert '<div class="d-flex flex-wrap justify-content-between align-items-center gap-2 mb-3" id="heading">' in html


def test_detail_reject_goes_to_the_confirmation_page(admin_client: Client, alice_mailbox: Mailbox) -> None:
    html = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    confirm = f"/mailboxes/{alice_mailbox.pk}/reject/confirm/?next=/mailboxes/{alice_mailbox.pk}/"
    assert f'href="{confirm}"' in html
    assert f'action="/mailboxes/{alice_mailbox.pk}/reject/"' not in html


def test_detail_of_another_organizations_mailbox_is_404(admin_client: Client, other_mailbox: Mailbox) -> None:
    assert admin_client.get(f"/mailboxes/{other_mailbox.pk}/").status_code == 404


# Delete


def test_delete_get_asks_for_confirmation_and_deletes_nothing(admin_client: Client, alice_mailbox: Mailbox) -> None:
    response = admin_client.get(f"/mailboxes/{alice_mailbox.pk}/delete/")
    assert response.status_code == 200
    assert 'method="post"' in response.content.decode()
    assert Mailbox.objects.filter(pk=alice_mailbox.pk).exists()
    assert not AuditEvent.objects.filter(action__startswith="mailbox.").exists()


def test_delete_post_deletes_and_audits(admin_client: Client, alice_mailbox: Mailbox, admin: Any) -> None:
    pk = alice_mailbox.pk
    response = admin_client.post(f"/mailboxes/{pk}/delete/")
    assert response.status_code == 302
    assert response.url == "/mailboxes/"
    assert not Mailbox.objects.filter(pk=pk).exists()
    event = AuditEvent.objects.get(action="mailbox.deleted")
    assert (event.object_id, event.object_repr, event.actor) == (str(pk), "alice@example.com", admin)


def test_delete_of_another_organizations_mailbox_is_404(admin_client: Client, other_mailbox: Mailbox) -> None:
    assert admin_client.get(f"/mailboxes/{other_mailbox.pk}/delete/").status_code == 404
    assert admin_client.post(f"/mailboxes/{other_mailbox.pk}/delete/").status_code == 404
    assert Mailbox.objects.filter(pk=other_mailbox.pk).exists()
