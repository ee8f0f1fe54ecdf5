"""Template helpers shared by the apps' pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext

from audit import display
from audit.models import AuditEvent

register = template.Library()


@register.simple_tag
def field_label(event: AuditEvent, name: str) -> str:
    """The human name of a changed field ("polling interval (minutes)"), or the name in words."""
    return display.field_label(event, name)


@register.filter
def stored_text(value: Any) -> Any:
    """A message stored in English by a background job (a test result, a sync error), in the
    reader's language where it is one of the portal's fixed messages; as stored otherwise."""
    return gettext(value) if isinstance(value, str) and value else value
