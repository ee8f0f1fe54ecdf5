"""Template helpers shared by the apps' pages."""

from __future__ import annotations

from django import template
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist

from audit.models import AuditEvent

register = template.Library()


@register.simple_tag
def field_label(event: AuditEvent, name: str) -> str:
    """The human name of a changed field ("polling interval (minutes)"), or the raw name."""
    try:
        model = apps.get_model(event.object_type)
        return str(model._meta.get_field(name).verbose_name)
    except (LookupError, ValueError, FieldDoesNotExist):
        return name
