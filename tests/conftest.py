"""Shared test setup: a fast hasher, a real Redis, and the personas.

The personas (STYLE.md): in organization "Acme" an administrator, an approver,
an auditor, and alice and bob as plain users; charlie belongs to no
organization; "Globex" is another organization with its own administrator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Browser, Page, sync_playwright

from audit.log import Actor
from mailboxes.models import EmailServerProfile, Mailbox, Membership, Organization, ProfileKind, Role

PASSWORD = "pw-for-tests"


def pytest_configure(config: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL if set (CI's real Redis), else an embedded server for the session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from crmsync_portal.lib import embedded_redis

    server = embedded_redis.start(Path(tmp_path_factory.mktemp("redis")))
    try:
        yield embedded_redis.url(server, db=15)
    finally:
        embedded_redis.stop(server)


@pytest.fixture
def rq_queues(redis_url: str, settings: Any) -> Iterator[str]:
    """Point django-rq's queues at the test Redis and empty it before and after."""
    from redis import Redis

    settings.RQ_QUEUES = {name: {**conf, "URL": redis_url} for name, conf in settings.RQ_QUEUES.items()}
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    yield redis_url
    connection.flushdb()


def make_user(username: str, **extra: Any) -> Any:
    return get_user_model().objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.com", **extra
    )


@pytest.fixture
def system() -> Actor:
    return Actor.system("tests")


@pytest.fixture
def org(db: Any) -> Organization:
    return Organization.objects.create(name="Acme")


@pytest.fixture
def other_org(db: Any) -> Organization:
    return Organization.objects.create(name="Globex")


def _member(system: Actor, org: Organization, username: str, role: str) -> Any:
    user = make_user(username, first_name=username.title())
    Membership.add(system, user, org, role)
    return user


@pytest.fixture
def admin(org: Organization, system: Actor) -> Any:
    return _member(system, org, "admin", Role.ADMINISTRATOR)


@pytest.fixture
def approver(org: Organization, system: Actor) -> Any:
    return _member(system, org, "approver", Role.APPROVER)


@pytest.fixture
def auditor(org: Organization, system: Actor) -> Any:
    return _member(system, org, "auditor", Role.AUDITOR)


@pytest.fixture
def alice(org: Organization, system: Actor) -> Any:
    return _member(system, org, "alice", Role.USER)


@pytest.fixture
def bob(org: Organization, system: Actor) -> Any:
    return _member(system, org, "bob", Role.USER)


@pytest.fixture
def charlie(db: Any) -> Any:
    return make_user("charlie")


@pytest.fixture
def outsider(other_org: Organization, system: Actor) -> Any:
    """An administrator of another organization."""
    return _member(system, other_org, "outsider", Role.ADMINISTRATOR)


def make_profile(org: Organization, name: str = "Exchange", **fields: Any) -> EmailServerProfile:
    values = {
        "kind": ProfileKind.EXCHANGE_ONPREM,
        "ews_url": "https://mail.example.com/EWS/Exchange.asmx",
        "username": "svc@example.com",
        "password": "s3cret-profile-pw",
        **fields,
    }
    return EmailServerProfile.objects.create(organization=org, name=name, **values)


@pytest.fixture
def profile(org: Organization) -> EmailServerProfile:
    return make_profile(org)


@pytest.fixture
def pop3_profile(org: Organization) -> EmailServerProfile:
    return make_profile(
        org,
        "POP3",
        kind=ProfileKind.POP3_SMTP,
        ews_url="",
        incoming_host="pop.example.com",
        incoming_port=995,
        outgoing_host="smtp.example.com",
        outgoing_port=587,
    )


@pytest.fixture
def other_profile(other_org: Organization) -> EmailServerProfile:
    return make_profile(other_org, "Globex Exchange")


def make_mailbox(org: Organization, user: Any = None, address: str = "", profile: Any = None, **fields: Any) -> Mailbox:
    mailbox = Mailbox(organization=org, user=user, address=address, profile=profile, **fields)
    mailbox.prepare_approval()
    mailbox.save()
    return mailbox


@pytest.fixture
def alice_mailbox(org: Organization, alice: Any, profile: EmailServerProfile) -> Mailbox:
    """Alice's mailbox, its address pending approval."""
    return make_mailbox(org, alice, "alice@example.com", profile)


@pytest.fixture
def other_mailbox(other_org: Organization, other_profile: EmailServerProfile, system: Actor) -> Mailbox:
    user = _member(system, other_org, "gina", Role.USER)
    return make_mailbox(other_org, user, "gina@globex.example", other_profile)


def make_conflict(mailbox: Mailbox, contact: Any, applied: str = "exchange") -> Any:
    """An open conflict of a contact on two fields; ``applied``: the side the engine applied."""
    from syncjobs.models import Conflict

    return Conflict.objects.create(
        mailbox=mailbox,
        record_type="contact",
        crm_id=contact.pk,
        fields=["job_title", "mobile_phone"],
        base={"job_title": "Engineer", "mobile_phone": "+1 555 0100"},
        crm_values={"job_title": "Analyst", "mobile_phone": "+1 555 0101"},
        exchange_values={"job_title": "Countess", "mobile_phone": "+1 555 0199"},
        resolution={"job_title": applied, "mobile_phone": applied},
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# Browser tests: Debian's Chromium driven by Playwright's sync API against live_server, one
# browser for the whole session (Playwright's sync API cannot run two at once in a thread).
#
# Playwright's sync API runs an asyncio event loop in the test thread, and Django refuses
# synchronous database access while a loop runs there; the documented escape hatch is
# DJANGO_ALLOW_ASYNC_UNSAFE. The tests touch the database only between browser calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    # Keep each phase's report on the item so the page fixture knows whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser context per test; a full-page screenshot in tmp_path if the test failed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        path = tmp_path / "failure.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failing page: {path}")
    context.close()
