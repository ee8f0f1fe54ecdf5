"""Every error page has the portal's layout and says what to do (issue 7, item 2)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django.views.defaults import bad_request, server_error

from tests.conftest import client_for

pytestmark = pytest.mark.django_db

LAYOUT = 'class="navbar-brand"'


def test_a_missing_page_has_the_layout_and_a_way_home(admin: Any) -> None:
    response = client_for(admin).get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert LAYOUT in html and "Page not found" in html and 'href="/"' in html
    assert "Sign out" in html  # the menu is there for a signed-in person


def test_a_refused_page_says_to_ask_an_administrator(approver: Any) -> None:
    response = client_for(approver).get("/mailboxes/")
    html = response.content.decode()
    assert response.status_code == 403
    assert LAYOUT in html and "ask an administrator" in html


def test_an_expired_form_says_to_reload(admin: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post("/profiles/new/", {"name": "x"})
    html = response.content.decode()
    assert response.status_code == 403
    assert LAYOUT in html and "The form had expired" in html


def test_server_errors_and_bad_requests_have_the_layout() -> None:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    for view, status, text in ((server_error, 500, "Something went wrong"), (bad_request, 400, "Bad request")):
        response = view(request) if view is server_error else view(request, exception=None)
        html = response.content.decode()
        assert response.status_code == status
        assert LAYOUT in html and text in html


def test_the_favicon_is_served() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response.url.endswith("favicon.svg")


def test_signing_out_says_so(admin: Any) -> None:
    client = client_for(admin)
    response = client.post("/logout/", follow=True)
    assert "You are signed out." in response.content.decode()


def test_the_menu_marks_the_current_section(admin: Any) -> None:
    html = client_for(admin).get("/mailboxes/").content.decode()
    assert 'class="nav-link active" aria-current="page" href="/mailboxes/"' in html
    assert 'class="nav-link" href="/profiles/"' in html


def test_times_show_their_time_zone(admin: Any, alice_mailbox: Any) -> None:
    from django.utils import timezone

    alice_mailbox.next_sync_at = timezone.now()
    alice_mailbox.save()
    html = client_for(admin).get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    assert " UTC</dd>" in html


# The permission matrix of the error pages: every persona gets the page with the layout, and the
# menu of its own role only; someone signed out gets no menu at all.
MENU = {
    "admin": {"/dashboard/", "/mailboxes/", "/profiles/", "/approvals/", "/audit/"},
    "approver": {"/approvals/"},
    "auditor": {"/audit/"},
    "alice": set(),
    "charlie": set(),
    "anonymous": set(),
}


@pytest.mark.parametrize("persona", sorted(MENU))
@pytest.mark.parametrize(("url", "status"), [("/no-such-page/", 404), ("/profiles/", 403)])
def test_error_pages_show_each_persona_only_its_menu(
    request: pytest.FixtureRequest, persona: str, url: str, status: int
) -> None:
    client = Client() if persona == "anonymous" else client_for(request.getfixturevalue(persona))
    response = client.get(url)
    if status == 403 and persona in ("admin", "anonymous"):
        # Not an error for them: the page itself, or the sign-in page.
        assert response.status_code == (200 if persona == "admin" else 302)
        return
    assert response.status_code == status
    html = response.content.decode()
    assert LAYOUT in html
    nav = html.split("</nav>", 1)[0]
    shown = {
        href
        for href in ("/dashboard/", "/mailboxes/", "/profiles/", "/approvals/", "/audit/")
        if f'href="{href}"' in nav
    }
    assert shown == MENU[persona]
    assert ("Sign out" in nav) is (persona != "anonymous")


def test_the_sign_in_page_shows_the_portal_name_not_the_host() -> None:
    html = Client().get("/login/").content.decode()
    assert "<title>Sign in · CRM Sync Portal</title>" in html
    assert 'class="navbar-brand" href="/">CRM Sync Portal</a>' in html
    assert "testserver" not in html
