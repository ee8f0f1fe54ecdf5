"""Recording audit events: one call per change, from the model layer."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models
from django.http import HttpRequest

from audit.models import AuditEvent

MASK = "********"
MASK_CHANGED = "******** (changed)"


@dataclass(frozen=True)
class Actor:
    """Who made a change and from where: a signed-in user or the system."""

    user: Any = None
    ip: str | None = None
    name: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        return cls(user=request.user, ip=client_ip(request), name=request.user.get_username() or "anonymous")

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(name=name)

    @property
    def display_name(self) -> str:
        return self.name or (self.user.get_username() if self.user else "system")


_acting: ContextVar[Actor | None] = ContextVar("audit_acting", default=None)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Who is behind the changes made inside the block that record no actor of their own:
    the objects a deletion takes with it (audit.mixins.record_deletion)."""
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


def current_actor() -> Actor:
    """The actor of the enclosing ``acting_as``, else the system."""
    return _acting.get() or Actor.system()


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: from CLIENT_IP_HEADER behind proxies, else the socket's.

    1. Each proxy appends the address it received the request from, so the header reads
       "whatever the client sent, ..., added by proxy 1, ..., added by proxy N". Only the
       last TRUSTED_PROXY_COUNT entries are trustworthy: take the TRUSTED_PROXY_COUNT-th from
       the right, never the first (the client can send any header it likes).
    2. A value that is not an IP address is ignored (the audit log's column holds addresses).
    3. Otherwise, and without a header, the socket's address (REMOTE_ADDR).
    """
    header = settings.CLIENT_IP_HEADER
    if header:
        entries = [entry.strip() for entry in request.headers.get(header, "").split(",")]
        count = settings.TRUSTED_PROXY_COUNT
        if count >= 1 and len(entries) >= count and (address := _ip_address(entries[-count])):
            return address
    return _ip_address(request.META.get("REMOTE_ADDR", ""))


def _ip_address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def record(
    actor: Actor,
    action: str,
    obj: models.Model,
    *,
    changes: dict[str, list[Any]] | None = None,
    organization: Any = None,
) -> AuditEvent:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=actor.display_name,
        ip=actor.ip,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:255],
        organization_id=getattr(organization, "pk", None),
        organization_name=str(organization or "")[:200],
        changes=changes or {},
    )
