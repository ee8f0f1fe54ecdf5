"""The audit actions the portal records, each with the words a person reads.

Every dotted action code passed to ``record`` or ``save_audited`` (and each
``<audit_name>.created/updated/deleted`` that ``AuditedModel`` derives) has a
label here; tests/audit/test_actions.py fails when one is missing. An event with
an unknown code (an old one, say) still shows: as the code in words.
"""

from __future__ import annotations

from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override

ACTIONS = {
    # Organizations (mailboxes.Organization)
    "organization.created": _("Organization created"),
    "organization.updated": _("Organization changed"),
    "organization.deleted": _("Organization deleted"),
    # Memberships (mailboxes.Membership)
    "membership.created": _("Member added"),
    "membership.updated": _("Membership changed"),
    "membership.deleted": _("Member removed"),
    "membership.sync_organization_taken": _("Made the member's sync organization"),
    "membership.sync_organization_released": _("No longer the member's sync organization"),
    # Email server profiles (mailboxes.EmailServerProfile)
    "server_profile.created": _("Server profile created"),
    "server_profile.updated": _("Server profile changed"),
    "server_profile.deleted": _("Server profile deleted"),
    "server_profile.secrets_reencrypted": _("Server profile secrets re-encrypted with the new key"),
    # Mailboxes (mailboxes.Mailbox), their approval, tests and syncs
    "mailbox.created": _("Mailbox created"),
    "mailbox.updated": _("Mailbox changed"),
    "mailbox.deleted": _("Mailbox deleted"),
    "mailbox.approved": _("Email address approved"),
    "mailbox.rejected": _("Email address rejected"),
    "mailbox.address_released": _("Email address released for another mailbox"),
    "mailbox.address_remapped": _("Email address moved here from another mailbox"),
    "mailbox.secrets_reencrypted": _("Mailbox password re-encrypted with the new key"),
    "mailbox.tests_reset": _("Tests reset after a connection change"),
    "mailbox.test_requested": _("Test & Enable requested"),
    "mailbox.tested": _("Test & Enable finished"),
    "mailbox.test_failed": _("Test & Enable failed"),
    "mailbox.sync_requested": _("Sync requested"),
    "mailbox.deletes_confirmed": _("Mass delete confirmed and sync requested"),
    "mailbox.mass_delete_stopped": _("Sync stopped by the mass-delete guard"),
    "mailbox.channel_disabled": _("Channel disabled after a permanent error"),
    "mailbox.item_released": _("Quarantined item released"),
    "mailbox.conflict_resolved": _("Conflict resolved with the other side's values"),
    "mailbox.folder_tracked": _("Folder tracked"),
    "mailbox.folder_untracked": _("Folder no longer tracked"),
    # Alerts (monitoring.Alert), recorded on their mailbox or server profile
    "alert.acknowledged": _("Alert acknowledged"),
    "email.conversation_tracked": _("Conversation tracked"),
    # CRM sync settings (crm.SyncFilter, crm.FieldDirection)
    "sync_filter.created": _("Sync filter created"),
    "sync_filter.updated": _("Sync filter changed"),
    "sync_filter.deleted": _("Sync filter deleted"),
    "field_direction.created": _("Field direction set"),
    "field_direction.updated": _("Field direction changed"),
    "field_direction.deleted": _("Field direction removed"),
    # Client instances (clients.ClientInstance) and which one synchronizes
    "client_instance.created": _("Client instance created"),
    "client_instance.updated": _("Client instance changed"),
    "client_instance.deleted": _("Client instance deleted"),
    "client_instance.registered": _("Client instance registered"),
    "client_instance.revoked": _("Client instance revoked"),
    "client_instance.promotion_requested": _("Asked to become the synchronizing instance"),
    "client_instance.promotion_approved": _("Approved as the synchronizing instance"),
    "client_instance.promotion_auto_approved": _("Approved automatically as the synchronizing instance"),
    "client_instance.promotion_rejected": _("Refused as the synchronizing instance"),
    "client_instance.promotion_cancelled": _("Request to become the synchronizing instance withdrawn"),
    "client_instance.demoted": _("No longer the synchronizing instance"),
    "client_conflict.resolved": _("Conflict from a client resolved"),
    # Offline filters (clients.OfflineFilter)
    "offline_filter.created": _("Offline filter created"),
    "offline_filter.updated": _("Offline filter changed"),
    "offline_filter.deleted": _("Offline filter deleted"),
    # CRM emails and queue items (crm/email_actions.py)
    "email.draft_saved": _("Email draft saved"),
    "email.send_requested": _("Email queued for sending"),
    "queue_item.assigned": _("Queue item assigned"),
    "queue_item.done": _("Queue item done"),
    # The audit log itself (audit.views)
    "audit.exported": _("Audit log exported"),
    "audit.pruned": _("Old audit events archived and removed"),
    # Sign-in (crmsync_portal.auth)
    "user.locked_out": _("Sign-in blocked after too many failed attempts"),
    # Users (the Django admin; audit.mixins.record_deletion)
    "user.deleted": _("User deleted"),
}


def humanize(code: str) -> str:
    """A code in words: "system.keys_rotated" -> "System keys rotated"."""
    return capfirst(code.replace(".", " ").replace("_", " ").strip())


def action_label(code: str) -> str:
    """The label of an action code in the active language; an unknown code in words."""
    label = ACTIONS.get(code)
    return str(label) if label is not None else humanize(code)


def choices() -> list[tuple[str, str]]:
    """(code, label) of every known action, by label: for a filter's drop-down."""
    return sorted(((code, str(label)) for code, label in ACTIONS.items()), key=lambda pair: pair[1].lower())


def codes_matching(text: str) -> set[str]:
    """The codes whose label contains ``text``, in the active language or in English.

    English too: the codes are English, and a person may type what they saw on another
    language's page.
    """
    text = text.casefold()
    if not text:
        return set()
    found = {code for code, label in ACTIONS.items() if text in str(label).casefold()}
    with override("en"):
        found |= {code for code, label in ACTIONS.items() if text in str(label).casefold()}
    return found
