"""The Django admin for operators: instances and requests to read (their changes go through the
pages and the API, which audit them), offline filters to edit (audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.log import Actor
from clients.models import ClientConflict, ClientInstance, OfflineFilter, PromotionRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ClientInstance)
class ClientInstanceAdmin(ReadOnlyAdmin):
    list_display = ("name", "machine", "user", "organization", "is_sync_instance", "last_seen_at", "revoked_at")
    list_filter = ("is_sync_instance", "organization")
    search_fields = ("name", "machine", "user__username")
    exclude = ("token_hash",)


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    list_display = ("user", "instance", "status", "created_at", "decided_by_name", "decided_at")
    list_filter = ("status", "organization")


@admin.register(ClientConflict)
class ClientConflictAdmin(ReadOnlyAdmin):
    list_display = ("record_type", "record_id", "op", "user", "instance", "status", "created_at")
    list_filter = ("status", "record_type")


@admin.register(OfflineFilter)
class OfflineFilterAdmin(admin.ModelAdmin):
    list_display = ("name", "record_type", "user", "organization", "enabled")
    list_filter = ("record_type", "enabled")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.save_audited(Actor.from_request(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        obj.delete_audited(Actor.from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
