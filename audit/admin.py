from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest

from audit.log import Actor, acting_as
from audit.models import AuditAnchor, AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """The audit log is append-only, the admin included."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "time", "actor_name", "ip", "action", "object_type", "object_repr", "organization_name")
    list_filter = ("action", "object_type")
    search_fields = ("actor_name", "object_repr", "object_id", "action")
    date_hierarchy = "time"


@admin.register(AuditAnchor)
class AuditAnchorAdmin(ReadOnlyAdmin):
    list_display = ("time", "first_seq", "seq", "count", "before", "archive_name", "pruned_by")


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    """Django's user admin; a deletion records the user's and its memberships' removal by
    the signed-in administrator (audit.mixins.record_deletion)."""

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with acting_as(Actor.from_request(request)):
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with acting_as(Actor.from_request(request)):
            super().delete_queryset(request, queryset)
