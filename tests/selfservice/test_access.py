"""Every self-service URL and persona at once (STYLE.md 10): who gets what, and actions refuse GET."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from crm.models import SyncFilter
from mailboxes.models import Mailbox
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

# The pages every member may open, and those for administrators only.
PAGES = ["/me/mailbox/", "/me/filters/", "/me/filters/new/", "/me/settings/", "/me/conflicts/"]
ADMIN_PAGES = ["/me/filters/templates/", "/me/filters/templates/new/"]
# The actions: POST only.
ACTIONS = [
    "/me/mailbox/test/",
    "/me/filters/preview/",
    "/me/filters/{filter}/activate/",
    "/me/filters/{filter}/deactivate/",
    "/me/settings/tracking-rule/",
    "/me/settings/sync-organization/",
]


@pytest.fixture
def everyone(admin: Any, approver: Any, auditor: Any, alice: Any, bob: Any, charlie: Any) -> dict[str, Any]:
    return {"admin": admin, "approver": approver, "auditor": auditor, "alice": alice, "bob": bob, "charlie": charlie}


@pytest.mark.parametrize("url", PAGES)
def test_every_member_may_open_the_pages_and_nobody_else(everyone: dict[str, Any], url: str) -> None:
    for name, user in everyone.items():
        expected = 403 if name == "charlie" else 200
        assert client_for(user).get(url).status_code == expected, (name, url)
    assert Client().get(url).status_code == 302  # to the sign-in page


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_the_templates_pages_are_for_administrators(everyone: dict[str, Any], url: str) -> None:
    for name, user in everyone.items():
        expected = 200 if name == "admin" else 403
        assert client_for(user).get(url).status_code == expected, (name, url)


@pytest.mark.parametrize("url", ACTIONS)
def test_every_action_refuses_get(alice: Any, alice_mailbox: Mailbox, url: str) -> None:
    own = SyncFilter.objects.filter(user=alice).first()

    assert client_for(alice).get(url.format(filter=own.pk)).status_code == 405


def test_every_page_of_a_member_has_the_sub_navigation(alice: Any, alice_mailbox: Mailbox) -> None:
    client = client_for(alice)
    for url in PAGES:
        page = client.get(url).content.decode()
        assert 'id="selfservice-nav"' in page, url
        assert 'aria-current="page"' in page.split('id="selfservice-nav"')[1].split("</nav>")[0], url
