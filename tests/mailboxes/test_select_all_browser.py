"""Select all on the approvals page, in a browser: all on the page means all matching.

A browser test (marked e2e) beside the page's other tests, on the browser fixtures of
tests/conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mailboxes.models import Mailbox, Organization
from tests.conftest import PASSWORD, make_mailbox

pytestmark = pytest.mark.e2e


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation").get_by_text(username, exact=True)).to_be_visible()


def test_select_all_on_a_partial_page_selects_all_matching_until_a_row_is_unticked(
    page: Page,
    live_server: Any,
    transactional_db: Any,
    settings: Any,
    org: Organization,
    approver: Any,
    alice_mailbox: Mailbox,
    bob: Any,
    profile: Any,
) -> None:
    settings.PAGE_SIZE = 1
    make_mailbox(org, bob, "bob@example.com", profile)
    sign_in(page, live_server.url, "approver")
    page.goto(f"{live_server.url}/approvals/")
    select_all, all_matching = page.locator("#select-all"), page.locator("#all-matching")
    row = page.locator("#bulk input[name=mailbox]")
    expect(row).to_have_count(1)

    # 1. All on the page: all matching too.
    select_all.check()
    expect(row).to_be_checked()
    expect(all_matching).to_be_checked()

    # 2. A row unticked: neither all on the page nor all matching any more.
    row.uncheck()
    expect(all_matching).not_to_be_checked()
    expect(select_all).not_to_be_checked()

    # 3. Unticking all unticks all matching; ticking all again, the action applies to both addresses.
    select_all.check()
    select_all.uncheck()
    expect(all_matching).not_to_be_checked()
    select_all.check()
    page.get_by_role("button", name="Reject selected…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reject 2 email addresses?")
