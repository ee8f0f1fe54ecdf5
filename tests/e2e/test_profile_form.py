"""The profile and mailbox forms in a browser: the fields shown follow the choices made, and
without JavaScript every group shows."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD


def sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/login/")
    page.locator("#id_username").fill("admin")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation").get_by_text("admin", exact=True)).to_be_visible()


def group_of(page: Page, field_id: str) -> Any:
    return page.locator("fieldset", has=page.locator(f"#{field_id}"))


def test_choosing_a_server_type_and_authentication_shows_only_their_fields(
    page: Page, live_server: Any, transactional_db: Any, admin: Any
) -> None:
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/profiles/new/")
    exchange, pop3 = group_of(page, "id_ews_url"), group_of(page, "id_incoming_host")
    oauth, service_account = group_of(page, "id_oauth_client_secret"), group_of(page, "id_password")
    kind, auth = page.locator("#id_kind"), page.locator("#id_auth_type")

    # 1. No server type yet: nothing that depends on it.
    for group in (exchange, pop3, oauth):
        expect(group).to_be_hidden()
    expect(service_account).to_be_visible()

    # 2. POP3: its servers, not Exchange's.
    kind.select_option("pop3_smtp")
    expect(pop3).to_be_visible()
    expect(exchange).to_be_hidden()

    # 3. Exchange Online with OAuth: the application, no service account.
    kind.select_option("exchange_online")
    expect(exchange).to_be_visible()
    expect(pop3).to_be_hidden()
    expect(oauth).to_be_hidden()
    auth.select_option("oauth2")
    expect(oauth).to_be_visible()
    expect(service_account).to_be_hidden()

    # 4. OAuth is for Exchange Online only.
    kind.select_option("exchange_onprem")
    expect(oauth).to_be_hidden()


def test_the_mailbox_form_shows_the_owner_that_applies(
    page: Page, live_server: Any, transactional_db: Any, admin: Any
) -> None:
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/mailboxes/new/")
    user, queue = group_of(page, "id_user"), group_of(page, "id_queue_name")

    expect(user).to_be_visible()
    expect(queue).to_be_hidden()
    page.locator("#id_owner_type").select_option("queue")
    expect(queue).to_be_visible()
    expect(user).to_be_hidden()


def test_without_javascript_every_group_shows(
    browser: Browser, live_server: Any, transactional_db: Any, admin: Any
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, live_server.url)
        page.goto(f"{live_server.url}/profiles/new/")
        for field_id in ("id_ews_url", "id_incoming_host", "id_password", "id_oauth_client_secret"):
            expect(group_of(page, field_id)).to_be_visible()
        expect(group_of(page, "id_incoming_host").locator("legend")).to_have_text(
            "POP3/IMAP and SMTP servers (for POP3/SMTP and IMAP/SMTP profiles)"
        )
    finally:
        context.close()
