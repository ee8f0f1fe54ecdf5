"""The Django admin and the queue dashboard carry the portal's name and a way back to it (item 13)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD, make_user


def test_the_admin_and_the_queue_dashboard_lead_back_to_the_portal(
    page: Page, live_server: Any, transactional_db: Any, rq_queues: str
) -> None:
    make_user("root", is_staff=True, is_superuser=True)
    url = live_server.url
    page.goto(f"{url}/django-admin/login/")
    expect(page.get_by_role("link", name="Back to the portal")).to_have_attribute("href", "/")
    page.locator("#id_username").fill("root")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#login-form [type=submit]").click()
    expect(page).to_have_url(f"{url}/django-admin/")

    for path in ("/django-admin/", "/django-rq/"):
        response = page.goto(url + path)
        assert response is not None and response.status == 200, path
        expect(page.locator("#site-name")).to_contain_text(settings.SITE_NAME)
        expect(page.get_by_role("link", name="Back to the portal")).to_have_attribute("href", "/")
        # The portal's dark menu bar (static/css/admin.css).
        expect(page.locator("#header")).to_have_css("background-color", "rgb(33, 37, 41)")

    page.get_by_role("link", name="Back to the portal").click()
    expect(page).to_have_url(f"{url}/")
    expect(page.locator(".navbar-brand")).to_have_text(settings.SITE_NAME)
