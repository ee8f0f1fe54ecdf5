"""The sync filter editor in a browser: Alice builds a filter with the row editor, the preview
follows the conditions, and she saves it. No sleeps: every step waits on what the page shows."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from crm.models import Contact, SyncFilter
from mailboxes.models import Membership
from tests.conftest import PASSWORD, make_conflict
from tests.e2e.test_console import Visit, check

pytestmark = pytest.mark.e2e


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation").get_by_text(username, exact=True)).to_be_visible()


def test_alice_builds_a_filter_with_the_row_editor_and_saves_it(
    page: Page, live_server: Any, transactional_db: Any, org: Any, alice: Any, contacts: dict[str, Contact]
) -> None:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, live_server.url, "alice")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/me/filters/new/?record_type=contact")

    # The editor replaces the JSON text box. A new filter starts with "Owner is me": all four of
    # Alice's contacts.
    expect(page.locator("#rule-editor")).to_be_visible()
    expect(page.locator("#id_rules")).to_be_hidden()
    expect(page.get_by_label("Operator 1", exact=True)).to_have_value("is_me")
    count = page.locator("#preview-count")
    expect(count).to_have_text("4")

    # And last name contains "smith": Ann Smith, Sam Smithers and the inactive Old Smithson.
    page.get_by_role("button", name="Add a condition").click()
    page.get_by_label("Field 2", exact=True).select_option("last_name")
    page.get_by_label("Operator 2", exact=True).select_option("contains")
    page.get_by_label("Value 2", exact=True).fill("smith")
    expect(count).to_have_text("3")
    expect(page.locator("#preview-records")).to_contain_text("Sam Smithers")

    # And active: Old Smithson drops out.
    page.get_by_role("button", name="Add a condition").click()
    page.get_by_label("Field 3", exact=True).select_option("is_active")
    expect(count).to_have_text("2")
    expect(page.locator("#preview-records")).not_to_contain_text("Old Smithson")

    # The page fits a phone: nothing but the tables' own boxes scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.get_by_label("Name").fill("Active Smiths")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").filter(has_text="Active Smiths")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/me/filters/")

    saved = SyncFilter.objects.get(user=alice, name="Active Smiths")
    assert saved.rules == {
        "match": "all",
        "rules": [
            {"field": "owner", "operator": "is_me", "value": None},
            {"field": "last_name", "operator": "contains", "value": "smith"},
            {"field": "is_active", "operator": "eq", "value": True},
        ],
    }
    assert problems == []


def test_every_page_fits_a_phone_and_passes_axe(
    page: Page,
    live_server: Any,
    transactional_db: Any,
    org: Any,
    admin: Any,
    alice: Any,
    alice_mailbox: Any,
    second_org: Any,
    contacts: dict[str, Contact],
) -> None:
    make_conflict(alice_mailbox, contacts["ann"])
    SyncFilter.objects.create(organization=org, name="Team contacts", record_type="contact", rules={})
    own = SyncFilter.objects.filter(user=alice, organization=org).first()
    membership = Membership.objects.get(user=alice, organization=org)
    pages = {
        "alice": [
            Visit("my mailbox", "/me/mailbox/", heading="My mailbox"),
            Visit("change my mailbox", "/me/mailbox/edit/", heading="Change my mailbox"),
            Visit("my sync filters", "/me/filters/", heading="My sync filters"),
            Visit("new filter", "/me/filters/new/", heading="New sync filter"),
            Visit("edit filter", f"/me/filters/{own.pk}/edit/"),
            Visit("delete filter", f"/me/filters/{own.pk}/delete/"),
            Visit("my settings", "/me/settings/", heading="My settings"),
            Visit("my conflicts", "/me/conflicts/", heading="My conflicts"),
        ],
        "admin": [
            Visit("templates", "/me/filters/templates/", heading="Sync filter templates"),
            Visit("reset", f"/me/filters/templates/reset/?membership={membership.pk}"),
        ],
    }
    problems = []
    for username, visits in pages.items():
        page.context.clear_cookies()
        page.set_viewport_size({"width": 1280, "height": 900})
        sign_in(page, live_server.url, username)
        page.set_viewport_size({"width": 390, "height": 844})
        for visit in visits:
            page.goto(f"{live_server.url}{visit.path}")
            expect(page.locator("h1")).to_be_visible()
            problems += check(page, visit, with_axe=True)
    assert not problems, "\n".join(str(p) for p in problems)
