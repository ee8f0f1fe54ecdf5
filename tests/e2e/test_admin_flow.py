"""The administrator's main path, in a real browser.

Sign in, create a server profile, create a mailbox, approve it, find it in the
filtered list, see the approval in its history.
"""

from __future__ import annotations

import os
import re
from typing import Any

from playwright.sync_api import Page, Response, expect

from mailboxes.models import EmailServerProfile
from tests.conftest import PASSWORD

PROFILE_PASSWORD = "e2e-Pr0file-s3cret"
ADDRESS = "alice.e2e@example.com"
SCREENSHOT = os.environ.get("E2E_SCREENSHOT", "")


def test_admin_creates_approves_and_finds_a_mailbox(
    page: Page, live_server: Any, transactional_db: Any, admin: Any, alice: Any
) -> None:
    html: dict[str, str] = {}

    def keep_html(response: Response) -> None:
        # Read each page's HTML as it arrives: the browser may drop bodies after navigating on.
        if response.request.resource_type == "document" and response.status == 200:
            html[response.url] = response.text()

    page.on("response", keep_html)
    url = live_server.url

    # 1. Sign in through the login form.
    page.goto(f"{url}/login/")
    page.locator("#id_username").fill("admin")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation").get_by_text("admin", exact=True)).to_be_visible()

    # 2. Create an Exchange on-premises server profile.
    page.goto(f"{url}/profiles/new/")
    page.locator("#id_name").fill("Acme Exchange")
    page.locator("#id_kind").select_option(label="Exchange Server (on-premises, EWS)")
    page.locator("#id_ews_url").fill("https://mail.acme.example/EWS/Exchange.asmx")
    page.locator("#id_username").fill("svc-crm@acme.example")
    page.locator("#id_password").fill(PROFILE_PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_have_text("Server profile “Acme Exchange” created.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Server profile “Acme Exchange”")

    # 3. Create alice's mailbox on that profile.
    page.goto(f"{url}/mailboxes/new/")
    page.locator("#id_user").select_option(label="Alice (alice)")
    page.locator("#id_address").fill(ADDRESS)
    page.locator("#id_profile").select_option(label="Acme Exchange")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_have_text(f"Mailbox {ADDRESS} created.")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Mailbox {ADDRESS}")
    detail_url = page.url

    # 4. Pending approval, then approved.
    approval = page.locator("#approval")
    expect(approval.locator(".badge")).to_have_text("Pending approval")
    approval.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert")).to_have_text(f"Email address {ADDRESS} approved.")
    expect(approval.locator(".badge")).to_have_text("Approved")
    expect(approval.get_by_role("button", name="Approve")).to_have_count(0)
    assert page.url == detail_url
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)

    # 5. Search the list for part of the address, approved only.
    page.goto(f"{url}/mailboxes/")
    page.locator("#id_q").fill("alice.e2e")
    page.locator("#id_approval").select_option(label="Approved")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]approval=approved"))
    rows = page.locator("#mailboxes tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(0)).to_have_text(ADDRESS)
    expect(rows.first.locator("td").nth(1)).to_have_text("Alice")
    expect(rows.first.locator("td").nth(2)).to_have_text("Acme Exchange")
    expect(rows.first.locator("td").nth(4)).to_have_text("Approved")

    # 6. Open it: the approval is in its history, by admin.
    rows.first.get_by_role("link", name=ADDRESS).click()
    expect(page).to_have_url(detail_url)
    approved = page.locator("table.history tbody tr").filter(
        has=page.locator("td.action", has_text="Email address approved")
    )
    expect(approved).to_have_count(1)
    expect(approved.locator("td").nth(1)).to_contain_text("admin")

    # 7. The profile password was stored, yet never reached the browser.
    assert EmailServerProfile.objects.get(name="Acme Exchange").password == PROFILE_PASSWORD
    assert len(html) >= 7, sorted(html)
    leaked = [page_url for page_url, text in html.items() if PROFILE_PASSWORD in text]
    assert leaked == []
