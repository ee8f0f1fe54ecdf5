from __future__ import annotations

from django.contrib import admin

from mailboxes.models import EmailServerProfile, Mailbox, Membership, Organization


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "require_approval_user_mailboxes", "require_approval_queue_mailboxes", "ignore_logical_deletes")
    search_fields = ("name",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organization", "role", "is_sync_organization")
    list_filter = ("role", "organization")
    search_fields = ("user__username", "organization__name")


@admin.register(EmailServerProfile)
class EmailServerProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "kind", "is_default")
    list_filter = ("kind", "organization")
    # Secrets are edited in the console only, where they are write-only.
    exclude = ("password", "oauth_client_secret")


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ("address", "owner_type", "user", "queue_name", "organization", "approval_status", "test_overall")
    list_filter = ("approval_status", "test_overall", "organization")
    search_fields = ("address", "user__username", "queue_name")
    list_select_related = ("user", "organization")
    exclude = ("password",)
