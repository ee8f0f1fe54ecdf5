"""The Django admin for operators: CRM records (deleted ones too), sync filters and field directions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from crm.models import Account, Appointment, Contact, FieldDirection, Lead, SyncFilter, Task
from mailboxes.admin import AuditedAdmin


class RecordAdmin(admin.ModelAdmin):
    """Operators see soft-deleted records too; a delete here is the model's soft delete."""

    list_filter = ("organization",)
    list_select_related = ("organization", "owner")
    readonly_fields = ("created_at", "updated_at", "version", "deleted_at")
    raw_id_fields = ("owner",)

    def get_queryset(self, request: HttpRequest) -> Any:
        return self.model.all_objects.select_related("organization", "owner")


@admin.register(Account)
class AccountAdmin(RecordAdmin):
    list_display = ("name", "email", "organization", "owner", "updated_at", "deleted_at")
    search_fields = ("name", "email")


@admin.register(Contact)
class ContactAdmin(RecordAdmin):
    list_display = ("last_name", "first_name", "email", "organization", "owner", "updated_at", "deleted_at")
    search_fields = ("first_name", "last_name", "email")
    raw_id_fields = ("owner", "account")


@admin.register(Lead)
class LeadAdmin(RecordAdmin):
    list_display = ("last_name", "first_name", "company_name", "status", "organization", "owner", "deleted_at")
    list_filter = ("status", "organization")
    search_fields = ("first_name", "last_name", "company_name", "email")


@admin.register(Appointment)
class AppointmentAdmin(RecordAdmin):
    list_display = ("subject", "start", "end", "status", "organization", "owner", "deleted_at")
    list_filter = ("status", "organization")
    search_fields = ("subject", "location", "ical_uid")
    raw_id_fields = ("owner", "regarding_account", "regarding_contact")


@admin.register(Task)
class TaskAdmin(RecordAdmin):
    list_display = ("subject", "due", "status", "priority", "organization", "owner", "deleted_at")
    list_filter = ("status", "priority", "organization")
    search_fields = ("subject",)


@admin.register(SyncFilter)
class SyncFilterAdmin(AuditedAdmin):
    list_display = ("name", "record_type", "organization", "user", "enabled")
    list_filter = ("record_type", "enabled", "organization")
    search_fields = ("name", "user__username")
    raw_id_fields = ("user",)


@admin.register(FieldDirection)
class FieldDirectionAdmin(AuditedAdmin):
    list_display = ("record_type", "field", "direction", "organization")
    list_filter = ("record_type", "direction", "organization")
