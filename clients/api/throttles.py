"""Rate limits of the client API (DRF throttles on Django's default cache).

The portal configures no CACHES, so the cache is Django's local-memory one: each process
counts on its own, and with N web processes a client may make up to N times the rate. That
bounds abuse per process, which is the point; a shared cache (Redis) would make it exact.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from clients.models import ClientInstance


class TokenRateThrottle(SimpleRateThrottle):
    """Per token (instance): CLIENT_API_RATE."""

    scope = "client_token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, ClientInstance):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class RegisterRateThrottle(SimpleRateThrottle):
    """Registrations per user: CLIENT_API_REGISTER_RATE (each one makes a token)."""

    scope = "client_register"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
