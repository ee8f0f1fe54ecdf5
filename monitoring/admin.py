"""Alerts in the Django admin: read only (acknowledging is the monitoring page's, and audited there)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from monitoring.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("created", "kind", "organization", "mailbox", "channel", "profile", "status", "emailed_at")
    list_filter = ("kind", "status", "organization")
    search_fields = ("mailbox__address", "profile__name", "detail")
    list_select_related = ("organization", "mailbox", "profile")
    date_hierarchy = "created"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
