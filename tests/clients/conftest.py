"""Client API test helpers: registered instances and requests with their tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from audit.log import Actor
from clients.models import ClientInstance
from mailboxes.models import Organization
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def clear_cache() -> Iterator[None]:
    """Throttle counters live in the cache: every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {encoded}"}


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def register(
    user: Any, org: Organization, name: str = "Laptop", machine: str = "LAPTOP-1"
) -> tuple[ClientInstance, str]:
    return ClientInstance.register(Actor.system("tests"), user, org, name, machine, "9.1")


class Api:
    """A client program: JSON in and out, with its token."""

    def __init__(self, token: str = "") -> None:
        self.client = Client()
        self.token = token

    def _headers(self) -> dict[str, str]:
        return bearer(self.token) if self.token else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params, **self._headers())

    def post(self, path: str, body: Any = None, raw: str | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(path, data, content_type="application/json", **self._headers())


@pytest.fixture
def alice_sync(alice: Any, org: Organization) -> tuple[ClientInstance, Api]:
    """Alice's first instance: the synchronizing one."""
    instance, token = register(alice, org)
    return instance, Api(token)


@pytest.fixture
def alice_desktop(alice: Any, org: Organization, alice_sync: Any) -> tuple[ClientInstance, Api]:
    """Alice's second instance: not synchronizing."""
    instance, token = register(alice, org, "Desktop", "DESKTOP-7")
    return instance, Api(token)


def set_rate(monkeypatch: pytest.MonkeyPatch, scope: str, rate: str) -> None:
    """DRF reads the rates once, into the throttle class: patch them there."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, scope: rate})
