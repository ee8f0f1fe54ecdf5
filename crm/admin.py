"""The Django admin for operators: CRM records (deleted ones too), sync filters and field directions,
and email to read (emails, their recipients and receipts, tracked folders, queue items, ignored
messages change through the channels and the pages, which audit them and keep their rules)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from crm.models import (
    Account,
    Appointment,
    Contact,
    Email,
    EmailReceipt,
    EmailRecipient,
    FieldDirection,
    IgnoredMessage,
    Lead,
    QueueItem,
    SyncFilter,
    Task,
    TrackedFolder,
)
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


class ReadOnly:
    """Neither added, changed nor deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EmailRecipientInline(ReadOnly, admin.TabularInline):
    model = EmailRecipient
    fields = ("kind", "address", "name", "contact", "lead", "account", "user")
    extra = 0


class EmailReceiptInline(ReadOnly, admin.TabularInline):
    model = EmailReceipt
    fields = ("mailbox", "source_id", "folder", "received_at")
    extra = 0


@admin.register(Email)
class EmailAdmin(ReadOnly, RecordAdmin):
    """Read only: an email's status is the outgoing channel's (it sends once), its content the message's."""

    list_display = ("subject", "direction", "status", "sender", "mailbox", "organization", "created_at", "deleted_at")
    list_filter = ("direction", "status", "tracked_by", "organization")
    list_select_related = ("organization", "owner", "mailbox")
    search_fields = ("subject", "sender", "message_id", "tracking_number")
    date_hierarchy = "created_at"
    inlines = [EmailRecipientInline, EmailReceiptInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("mailbox")


@admin.register(TrackedFolder)
class TrackedFolderAdmin(ReadOnly, admin.ModelAdmin):
    """Read only: its user adds and removes it on "My tracked folders" (audited, at most 25 a mailbox)."""

    list_display = ("folder_name", "mailbox", "regarding", "folder_id")
    list_select_related = ("mailbox", "regarding_account", "regarding_contact", "regarding_lead")
    search_fields = ("folder_name", "mailbox__address")
    exclude = ("sync_state",)


@admin.register(QueueItem)
class QueueItemAdmin(ReadOnly, admin.ModelAdmin):
    """Read only: a queue's members assign its items on the queue's page."""

    list_display = ("email", "queue", "assigned_to", "status", "created")
    list_filter = ("status",)
    list_select_related = ("email", "queue", "assigned_to")
    search_fields = ("email__subject", "queue__address", "queue__queue_name")
    date_hierarchy = "created"


@admin.register(IgnoredMessage)
class IgnoredMessageAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("created", "mailbox", "subject", "message_id", "reason")
    list_select_related = ("mailbox",)
    search_fields = ("subject", "message_id", "reason", "mailbox__address")
    date_hierarchy = "created"
