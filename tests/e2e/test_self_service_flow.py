"""A user's whole self-service path, in a browser and through the client API.

Alice sets up her mailbox and a sync filter with the preview; her laptop's client registers and
synchronizes; her desktop's client asks to take over; the approver approves; from then on the
laptop's pull is refused with 409 and the desktop's works.
"""

from __future__ import annotations

from typing import Any

import requests
from playwright.sync_api import Browser, Page, expect

from crm.models import Contact, SyncFilter
from mailboxes.models import ApprovalStatus, EmailServerProfile, Mailbox
from tests.conftest import PASSWORD


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation").get_by_text(username, exact=True)).to_be_visible()


def register(url: str, name: str) -> dict[str, Any]:
    response = requests.post(
        f"{url}/api/v1/instances",
        auth=("alice", PASSWORD),
        json={"name": name, "machine": name.upper(), "client_version": "9.1"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def pull(url: str, token: str) -> requests.Response:
    return requests.get(f"{url}/api/v1/changes", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_alice_sets_up_her_mailbox_and_filter_and_her_desktop_takes_over_after_approval(
    page: Page,
    browser: Browser,
    live_server: Any,
    transactional_db: Any,
    org: Any,
    profile: EmailServerProfile,
    alice: Any,
    approver: Any,
) -> None:
    url = live_server.url
    lee = Contact.objects.create(organization=org, owner=alice, first_name="Ann", last_name="Lee")
    Contact.objects.create(organization=org, owner=alice, first_name="Bo", last_name="Berg")

    # 1. Alice sets up her own mailbox on the organization's profile: it waits for approval.
    sign_in(page, url, "alice")
    page.get_by_role("navigation").get_by_role("link", name="My mailbox").click()
    page.goto(f"{url}/me/mailbox/new/")
    page.locator("#id_address").fill("alice@example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("is set up")
    mailbox = Mailbox.objects.get(user=alice)
    assert (mailbox.address, mailbox.profile, mailbox.approval_status) == (
        "alice@example.com",
        profile,
        ApprovalStatus.PENDING,
    )

    # 2. A contact filter built with the row editor; the preview counts before she saves.
    page.goto(f"{url}/me/filters/new/?record_type=contact")
    count = page.locator("#preview-count")
    expect(count).to_have_text("2")
    page.get_by_role("button", name="Add a condition").click()
    page.get_by_label("Field 2", exact=True).select_option("last_name")
    page.get_by_label("Operator 2", exact=True).select_option("contains")
    page.get_by_label("Value 2", exact=True).fill("lee")
    expect(count).to_have_text("1")
    page.get_by_label("Name").fill("The Lees")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").filter(has_text="The Lees")).to_be_visible()
    assert SyncFilter.objects.filter(user=alice, name="The Lees", enabled=True).exists()

    # 3. The laptop registers first and synchronizes; the desktop registers and asks to take over.
    laptop, desktop = register(url, "laptop"), register(url, "desktop")
    assert (laptop["is_sync_instance"], desktop["is_sync_instance"]) == (True, False)
    assert pull(url, laptop["token"]).status_code == 200
    assert pull(url, desktop["token"]).status_code == 409
    promoted = requests.post(
        f"{url}/api/v1/instances/me/promote",
        headers={"Authorization": f"Bearer {desktop['token']}"},
        json={"reason": "New desktop"},
        timeout=30,
    )
    assert promoted.status_code == 202, promoted.text
    assert promoted.json()["request"]["status"] == "pending"

    # 4. The approver approves the request in the queue.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    approver_page = context.new_page()
    sign_in(approver_page, url, "approver")
    approver_page.get_by_role("navigation").get_by_role("link", name="Client requests").click()
    expect(approver_page.get_by_role("cell", name="New desktop")).to_be_visible()
    approver_page.locator("#reason").fill("Alice's new computer")
    approver_page.get_by_role("button", name="Approve alice").click()
    expect(approver_page.get_by_role("alert").first).to_be_visible()
    context.close()

    # 5. The old instance is refused, the new one pulls the records her filters select.
    refused = pull(url, laptop["token"])
    assert refused.status_code == 409 and "error" in refused.json()
    changes = pull(url, desktop["token"])
    assert changes.status_code == 200, changes.text
    assert str(lee.pk) in {change["id"] for change in changes.json()["changes"]}
    me = requests.get(
        f"{url}/api/v1/instances/me", headers={"Authorization": f"Bearer {desktop['token']}"}, timeout=30
    ).json()
    assert me["is_sync_instance"] is True and me["pending_request"] is None
