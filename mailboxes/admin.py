"""The Django admin for operators: every save and delete goes to the audit log too."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from audit.log import Actor
from mailboxes.models import EmailServerProfile, Mailbox, Membership, Organization


class AuditedAdmin(admin.ModelAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.save_audited(Actor.from_request(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        obj.delete_audited(Actor.from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = (
        "name",
        "require_approval_user_mailboxes",
        "require_approval_queue_mailboxes",
        "ignore_logical_deletes",
    )
    search_fields = ("name",)


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ("user", "organization", "role", "is_sync_organization")
    list_filter = ("role", "organization")
    search_fields = ("user__username", "organization__name")
    # The synchronizing organization changes only through Membership.make_synchronizing.
    readonly_fields = ("is_sync_organization",)
    actions = ["make_synchronizing"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            # As Membership.add: a user's first organization is the synchronizing one.
            obj.is_sync_organization = not Membership.objects.filter(user_id=obj.user_id).exists()
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Make this the user's synchronizing organization"))
    def make_synchronizing(self, request: HttpRequest, queryset: Any) -> None:
        for membership in queryset:
            membership.make_synchronizing(Actor.from_request(request))


@admin.register(EmailServerProfile)
class EmailServerProfileAdmin(AuditedAdmin):
    list_display = ("name", "organization", "kind", "is_default")
    list_filter = ("kind", "organization")
    # Secrets are edited in the console only, where they are write-only.
    exclude = ("password", "oauth_client_secret")


@admin.register(Mailbox)
class MailboxAdmin(AuditedAdmin):
    list_display = ("address", "owner_type", "user", "queue_name", "organization", "approval_status", "test_overall")
    list_filter = ("approval_status", "test_overall", "organization")
    search_fields = ("address", "user__username", "queue_name")
    list_select_related = ("user", "organization")
    exclude = ("password",)
