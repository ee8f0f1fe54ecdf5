from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, Any]:
    from mailboxes.access import roles_of

    return {
        "site_name": settings.SITE_NAME,
        "roles": roles_of(request.user) if request.user.is_authenticated else frozenset(),
        # The first part of the path: the menu marks the section the page belongs to.
        "section": request.path.strip("/").split("/")[0],
    }
