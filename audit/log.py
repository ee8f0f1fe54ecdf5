"""Recording audit events: one call per change, from the model layer."""

from __future__ import annotations

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


def client_ip(request: HttpRequest) -> str | None:
    header = settings.CLIENT_IP_HEADER
    if header:
        forwarded = request.headers.get(header, "")
        # The first address is the client; proxies append theirs.
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.META.get("REMOTE_ADDR") or None


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
