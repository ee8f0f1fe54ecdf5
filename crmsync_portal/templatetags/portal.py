"""Template helpers shared by the apps' pages."""

from __future__ import annotations

from django import template

from audit import display
from audit.models import AuditEvent

register = template.Library()


@register.simple_tag
def field_label(event: AuditEvent, name: str) -> str:
    """The human name of a changed field ("polling interval (minutes)"), or the name in words."""
    return display.field_label(event, name)
