"""Folder-level tracking and ignored messages: what a mailbox's pages show of its email channel.

A tracked folder maps a folder under a mailbox's Inbox to a CRM account, contact or lead; every
message in it is tracked regarding that record (syncjobs/mail/tracking.py). The incoming channel
(syncjobs/mail/channel.py) finds the folder by name: over EWS a folder directly under the Inbox,
its name compared without regard to case; over IMAP the folder's full name; POP3 has the Inbox
only. Adding and removing a folder is audited on the mailbox.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit.log import Actor, record
from crm.access import visible_records
from crm.models import Account, Contact, IgnoredMessage, Lead, TrackedFolder
from mailboxes.access import ADMIN, org_ids
from mailboxes.models import IncomingMethod, Mailbox, ProfileKind

# What a folder may regard, by the name used in "contact:<id>" and TrackedFolder's fields.
FOLDER_REGARDING: dict[str, type[Any]] = {"account": Account, "contact": Contact, "lead": Lead}
# The fields a record is found by when choosing it, and how many of each type are offered.
SEARCHED = {
    "account": ("name", "email"),
    "contact": ("first_name", "last_name", "email"),
    "lead": ("first_name", "last_name", "company_name", "email"),
}
CHOICES_SHOWN = 50
IGNORED_SHOWN = 20


def record_label(obj: Any) -> str:
    """ "Contact: Ada Lovelace"."""
    return f"{capfirst(obj._meta.verbose_name)}: {obj}"


def record_key(obj: Any) -> str:
    """ "contact:<id>"."""
    return f"{obj._meta.model_name}:{obj.pk}"


def find_folder_record(user: Any, organization_id: Any, key: str) -> Any:
    """The account, contact or lead "contact:<id>" names, if it is of the organization and the user may see it."""
    kind, _sep, pk = (key or "").partition(":")
    model = FOLDER_REGARDING.get(kind)
    if model is None:
        return None
    try:
        return visible_records(user, model).filter(organization_id=organization_id, pk=pk).first()
    except ValidationError:  # not a UUID
        return None


def record_choices(user: Any, organization_id: Any, search: str = "") -> tuple[list[Any], bool]:
    """The records a folder may regard, grouped by type, each group the first CHOICES_SHOWN that
    match every word of ``search``; and whether a group has more (one query per type)."""
    groups, more = [], False
    for kind, model in FOLDER_REGARDING.items():
        records = visible_records(user, model).filter(organization_id=organization_id)
        for word in search.split():
            records = records.filter(Q.create([(f"{field}__icontains", word) for field in SEARCHED[kind]], Q.OR))
        found = list(records[: CHOICES_SHOWN + 1])
        more = more or len(found) > CHOICES_SHOWN
        if found:
            label = capfirst(model._meta.verbose_name_plural)
            groups.append((label, [(record_key(obj), str(obj)) for obj in found[:CHOICES_SHOWN]]))
    return groups, more


def folders_unsupported(mailbox: Mailbox) -> str:
    """Why the mailbox's folders cannot be tracked, or "" if they can."""
    if mailbox.profile is not None and mailbox.profile.kind == ProfileKind.POP3_SMTP:
        return _("The mailbox's server profile uses POP3, which reads the Inbox only: folders cannot be tracked.")
    if mailbox.incoming_method == IncomingMethod.FORWARD_MAILBOX:
        return _("A forward mailbox processes the messages forwarded to it; its folders are not tracked.")
    return ""


def tracked_folders(mailbox: Mailbox) -> list[TrackedFolder]:
    """The mailbox's tracked folders (those the channel polls), with their records, in one query."""
    return list(
        TrackedFolder.objects.filter(mailbox=mailbox)
        .select_related("regarding_account", "regarding_contact", "regarding_lead")
        .order_by("folder_name", "pk")[: TrackedFolder.MAX_PER_MAILBOX]
    )


def tracked_folders_for(mailbox: Mailbox, user: Any) -> list[TrackedFolder]:
    """The tracked folders, each with ``record`` and, if the user may open it, ``record_url``."""
    folders = tracked_folders(mailbox)
    admin = mailbox.organization_id in org_ids(user, ADMIN)
    for folder in folders:
        folder.record = folder.regarding
        folder.record_label = record_label(folder.record) if folder.record is not None else ""
        visible = folder.record is not None and not folder.record.is_deleted
        visible = visible and (admin or folder.record.owner_id == user.pk)
        folder.record_url = folder.record.get_absolute_url() if visible else ""
    return folders


def mail_tracking(mailbox: Mailbox, user: Any) -> dict[str, Any]:
    """The mailbox pages' tracked folders and latest ignored messages: three queries."""
    ignored = IgnoredMessage.objects.filter(mailbox=mailbox)
    return {
        "tracked_folders": tracked_folders_for(mailbox, user),
        "ignored_messages": list(ignored.order_by("-created", "-pk")[:IGNORED_SHOWN]),
        "ignored_count": ignored.count(),
    }


def _changes(folder: TrackedFolder, adding: bool) -> dict[str, list[str]]:
    now = {"folder": folder.folder_name, "regarding": record_label(folder.regarding)}
    return {name: ["", value] if adding else [value, ""] for name, value in now.items()}


def track_folder(mailbox: Mailbox, name: str, regarding: Any, actor: Actor) -> TrackedFolder:
    """Track the folder ``name`` regarding ``regarding`` (audited); ValidationError if the mailbox
    tracks it already or tracks the most folders it may."""
    with transaction.atomic():
        # One add at a time per mailbox, so two at once cannot pass the limit together.
        Mailbox.objects.select_for_update().filter(pk=mailbox.pk).first()
        folders = TrackedFolder.objects.filter(mailbox=mailbox)
        if folders.filter(folder_name__iexact=name).exists():
            raise ValidationError(_("This folder is tracked already."), code="duplicate")
        if folders.count() >= TrackedFolder.MAX_PER_MAILBOX:
            raise ValidationError(
                _("A mailbox tracks %(n)d folders at most: remove one first."),
                code="limit",
                params={"n": TrackedFolder.MAX_PER_MAILBOX},
            )
        folder = TrackedFolder(mailbox=mailbox, folder_name=name)
        setattr(folder, f"regarding_{regarding._meta.model_name}", regarding)
        try:
            with transaction.atomic():
                folder.save()
        except IntegrityError as error:
            raise ValidationError(_("This folder is tracked already."), code="duplicate") from error
        record(
            actor, "mailbox.folder_tracked", mailbox, changes=_changes(folder, True), organization=mailbox.organization
        )
    return folder


def untrack_folder(folder: TrackedFolder, actor: Actor) -> None:
    """Stop tracking the folder (audited); the emails tracked from it stay."""
    mailbox = folder.mailbox
    with transaction.atomic():
        deleted, _rows = TrackedFolder.objects.filter(pk=folder.pk).delete()
        if deleted:
            changes = _changes(folder, False)
            record(actor, "mailbox.folder_untracked", mailbox, changes=changes, organization=mailbox.organization)
