"""The CRM records that sync with mailboxes: accounts, contacts, leads, appointments, tasks.

Every record belongs to one organization, has an owner (a member of that
organization), an indexed ``updated_at`` and a ``version`` that grows with every
change, and is deleted softly: ``delete()`` marks the row, the default manager
hides it, ``all_objects`` still sees it. The sync engine finds changes in these
columns, never through the code paths that made them.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.mixins import AuditedModel
from mailboxes.models import Membership, Organization


class RecordType(models.TextChoices):
    """The record types that sync with a mailbox (ACT)."""

    CONTACT = "contact", _("Contact")
    APPOINTMENT = "appointment", _("Appointment")
    TASK = "task", _("Task")


class RecordQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:  # type: ignore[override]
        """Soft delete: mark the rows, bump their version."""
        n = self.filter(deleted_at__isnull=True).update(
            deleted_at=timezone.now(), updated_at=timezone.now(), version=F("version") + 1
        )
        return n, {self.model._meta.label: n}

    def hard_delete(self) -> tuple[int, dict[str, int]]:
        return super().delete()


class LiveManager(models.Manager.from_queryset(RecordQuerySet)):  # type: ignore[misc]
    """Hides soft-deleted rows."""

    def get_queryset(self) -> RecordQuerySet:
        return super().get_queryset().filter(deleted_at__isnull=True)


AllManager = models.Manager.from_queryset(RecordQuerySet)


class CrmRecord(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, verbose_name=_("organization"))
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, verbose_name=_("owner"))
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False, db_index=True)
    version = models.PositiveBigIntegerField(_("version"), default=1, editable=False)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True, editable=False)

    objects = LiveManager()
    all_objects = AllManager()

    class Meta:
        abstract = True
        base_manager_name = "all_objects"
        # The sync engine's question: what changed in this organization since the last run.
        indexes = [models.Index(fields=["organization", "updated_at"], name="%(app_label)s_%(class)s_changed")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Every save is a change: a new version and a new updated_at."""
        self.updated_at = timezone.now()
        if not self._state.adding:
            self.version += 1
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "updated_at", "version"}
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:  # type: ignore[override]
        """Soft delete: the sync engine still sees the row and removes it from mailboxes."""
        if self.deleted_at is None:
            self.deleted_at = timezone.now()
            self.save(update_fields=["deleted_at"])
        return 1, {self._meta.label: 1}

    def get_absolute_url(self) -> str:
        # The record pages are named after the model: "contact-detail" is /crm/contacts/<pk>/.
        return reverse(f"{self._meta.model_name}-detail", args=[self.pk])

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def clean(self) -> None:
        if self.owner_id and self.organization_id:
            if not Membership.objects.filter(user_id=self.owner_id, organization_id=self.organization_id).exists():
                raise ValidationError({"owner": _("The owner must be a member of the record's organization.")})


class Account(CrmRecord):
    name = models.CharField(_("name"), max_length=160)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)

    class Meta(CrmRecord.Meta):
        ordering = ["name"]
        verbose_name = _("account")
        verbose_name_plural = _("accounts")

    def __str__(self) -> str:
        return self.name


class Contact(CrmRecord):
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100)
    email = models.EmailField(_("email"), blank=True)
    job_title = models.CharField(_("job title"), max_length=100, blank=True)
    business_phone = models.CharField(_("business phone"), max_length=50, blank=True)
    mobile_phone = models.CharField(_("mobile phone"), max_length=50, blank=True)
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts", verbose_name=_("account")
    )
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta(CrmRecord.Meta):
        ordering = ["last_name", "first_name"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class LeadStatus(models.TextChoices):
    NEW = "new", _("New")
    CONTACTED = "contacted", _("Contacted")
    QUALIFIED = "qualified", _("Qualified")
    DISQUALIFIED = "disqualified", _("Disqualified")


class Lead(CrmRecord):
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100)
    company_name = models.CharField(_("company"), max_length=160, blank=True)
    email = models.EmailField(_("email"), blank=True)
    status = models.CharField(_("status"), max_length=20, choices=LeadStatus.choices, default=LeadStatus.NEW)

    class Meta(CrmRecord.Meta):
        ordering = ["last_name", "first_name"]
        verbose_name = _("lead")
        verbose_name_plural = _("leads")

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ActivityStatus(models.TextChoices):
    OPEN = "open", _("Open")
    COMPLETED = "completed", _("Completed")
    CANCELED = "canceled", _("Canceled")


class Priority(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")


def new_ical_uid() -> str:
    return f"{uuid.uuid4()}@crmsync"


class Appointment(CrmRecord):
    subject = models.CharField(_("subject"), max_length=400)
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    location = models.CharField(_("location"), max_length=255, blank=True)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(_("status"), max_length=20, choices=ActivityStatus.choices, default=ActivityStatus.OPEN)
    # Email addresses, lower case; resolved_attendees() finds the records they belong to.
    attendees = models.JSONField(_("attendees"), default=list, blank=True)
    regarding_account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("regarding account")
    )
    regarding_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("regarding contact")
    )
    ical_uid = models.CharField(_("iCalendar UID"), max_length=255, default=new_ical_uid, db_index=True)

    class Meta(CrmRecord.Meta):
        ordering = ["-start"]
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(regarding_account__isnull=True) | models.Q(regarding_contact__isnull=True),
                name="appointment_regards_one_record",
                violation_error_message=_("An appointment regards an account or a contact, not both."),
            )
        ]

    def __str__(self) -> str:
        return self.subject

    def clean(self) -> None:
        super().clean()
        if self.start and self.end and self.end < self.start:
            raise ValidationError({"end": _("The end must not be before the start.")})
        self.attendees = sorted({a.strip().lower() for a in self.attendees or [] if a and a.strip()})

    def resolved_attendees(self) -> list[tuple[str, Any]]:
        """Each attendee address with the contact, lead or user it belongs to (or None)."""
        found: dict[str, Any] = {}
        addresses = list(self.attendees or [])
        from django.contrib.auth import get_user_model

        for model in (get_user_model(), Lead, Contact):
            qs = model.objects.filter(email__in=addresses)
            if model is not get_user_model():
                qs = qs.filter(organization_id=self.organization_id)
            for obj in qs:
                found[obj.email.lower()] = obj
        return [(address, found.get(address)) for address in addresses]


class Task(CrmRecord):
    subject = models.CharField(_("subject"), max_length=400)
    description = models.TextField(_("description"), blank=True)
    due = models.DateField(_("due"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=ActivityStatus.choices, default=ActivityStatus.OPEN)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, default=Priority.NORMAL)

    class Meta(CrmRecord.Meta):
        ordering = ["due", "subject"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")

    def __str__(self) -> str:
        return self.subject


# The models that sync, by record type.
SYNCED_MODELS: dict[str, type[CrmRecord]] = {
    RecordType.CONTACT: Contact,
    RecordType.APPOINTMENT: Appointment,
    RecordType.TASK: Task,
}


class FilterOperator(models.TextChoices):
    EQUALS = "eq", _("equals")
    NOT_EQUALS = "ne", _("does not equal")
    CONTAINS = "contains", _("contains")
    IS_ME = "is_me", _("is me")
    IS_SET = "is_set", _("has a value")
    IS_NOT_SET = "is_not_set", _("has no value")
    ON_OR_AFTER_DAYS = "on_or_after_days", _("on or after today plus N days")
    ON_OR_BEFORE_DAYS = "on_or_before_days", _("on or before today plus N days")
    IN = "in", _("is one of")


class FilterRules(AuditedModel):
    """A named, switchable set of filter rules for one record type (crm/filters.py validates and
    compiles them): the fields sync filters and the clients' offline filters share."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    record_type = models.CharField(_("record type"), max_length=20, choices=RecordType.choices)
    name = models.CharField(_("name"), max_length=200)
    enabled = models.BooleanField(_("enabled"), default=True)
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    def audit_organization(self) -> Organization:
        return self.organization


class SyncFilter(FilterRules):
    """Which records of one type go to a user's mailbox.

    ``rules`` is a group: ``{"match": "all" | "any", "rules": [row or group, ...]}`` where a
    row is ``{"field": ..., "operator": ..., "value": ...}``. A user's enabled filters for one
    record type are OR-ed; a user with none for a type does not sync that type. A filter with
    no user is an organization template, copied to users who join.
    """

    audit_name = "sync_filter"
    audit_fields = ("name", "record_type", "user", "enabled", "rules")

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="sync_filters", verbose_name=_("organization")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sync_filters",
        verbose_name=_("user"),
        help_text=_("Empty: an organization template, copied to users who join."),
    )

    class Meta:
        ordering = ["record_type", "name"]
        verbose_name = _("sync filter")
        verbose_name_plural = _("sync filters")
        indexes = [models.Index(fields=["user", "record_type"])]


class Direction(models.TextChoices):
    TWO_WAY = "two_way", _("Two-way")
    TO_EXCHANGE = "to_exchange", _("CRM → mailbox")
    TO_CRM = "to_crm", _("Mailbox → CRM")
    NONE = "none", _("Do not sync")


class FieldDirection(AuditedModel):
    """Which way one synced field flows, per organization; fields without a row are two-way."""

    audit_name = "field_direction"
    audit_fields = ("record_type", "field", "direction")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="field_directions", verbose_name=_("organization")
    )
    record_type = models.CharField(_("record type"), max_length=20, choices=RecordType.choices)
    field = models.CharField(_("field"), max_length=50)
    direction = models.CharField(_("direction"), max_length=20, choices=Direction.choices, default=Direction.TWO_WAY)

    class Meta:
        ordering = ["record_type", "field"]
        verbose_name = _("field direction")
        verbose_name_plural = _("field directions")
        constraints = [
            models.UniqueConstraint(fields=["organization", "record_type", "field"], name="one_direction_per_field")
        ]

    def __str__(self) -> str:
        return f"{self.record_type}.{self.field}: {self.get_direction_display()}"

    def clean(self) -> None:
        from crm.directions import validate_direction

        validate_direction(self.record_type, self.field, self.direction)

    def audit_organization(self) -> Organization:
        return self.organization


# Email (DOMAIN.md "Email tracking"). An email is a CRM activity, not a synced record: it is
# created once per Message-ID in an organization and never written back to a mailbox, except
# an outgoing email, which the outgoing channel sends once.


class EmailDirection(models.TextChoices):
    INCOMING = "incoming", _("Incoming")
    OUTGOING = "outgoing", _("Outgoing")


class EmailStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING_SEND = "pending_send", _("Pending send")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    RECEIVED = "received", _("Received")


class TrackedBy(models.TextChoices):
    """Why an incoming email became a CRM email: the tracking rule, a correlation, or a person."""

    RULE_ALL = "rule_all", _("Tracking rule: all email messages")
    RULE_CRM_RECORDS = "rule_crm_records", _("Tracking rule: from CRM leads, contacts and accounts")
    RULE_EMAIL_ENABLED = "rule_email_enabled", _("Tracking rule: from email-enabled records")
    IN_REPLY_TO = "in_reply_to", _("Correlated by In-Reply-To")
    TRACKING_TOKEN = "tracking_token", _("Correlated by the tracking token in the subject")
    CONVERSATION_INDEX = "conversation_index", _("Correlated by the conversation index")
    CATEGORY = "category", _("Tracked category")
    FOLDER = "folder", _("Tracked folder")
    QUEUE = "queue", _("Sent to a queue")
    MANUAL = "manual", _("Tracked by a person")
    SENT_FROM_CRM = "sent_from_crm", _("Sent from the CRM")


class Email(CrmRecord):
    """One email message in an organization, incoming or outgoing.

    ``message_id`` is unique per organization: a message received by three tracked mailboxes
    is one email with three mailbox receipts (``EmailReceipt``).
    """

    # related_name: the default ("email") would clash with User.email.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_emails", verbose_name=_("owner")
    )
    tracking_number = models.PositiveBigIntegerField(_("tracking number"), unique=True, null=True, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=998, blank=True)
    in_reply_to = models.CharField(_("In-Reply-To"), max_length=998, blank=True)
    references = models.TextField(_("References"), blank=True)
    conversation_id = models.CharField(_("conversation id"), max_length=512, blank=True, db_index=True)
    conversation_index = models.CharField(_("conversation index"), max_length=1024, blank=True)
    subject = models.CharField(_("subject"), max_length=998, blank=True)
    sender = models.CharField(_("from"), max_length=320, blank=True)
    sender_name = models.CharField(_("sender name"), max_length=255, blank=True)
    to = models.JSONField(_("to"), default=list, blank=True)
    cc = models.JSONField(_("cc"), default=list, blank=True)
    body_text = models.TextField(_("body"), blank=True)
    # Sanitized (nh3) before it is stored: never the raw HTML of the message.
    body_html = models.TextField(_("HTML body"), blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), null=True, blank=True)
    direction = models.CharField(_("direction"), max_length=10, choices=EmailDirection.choices)
    status = models.CharField(_("status"), max_length=20, choices=EmailStatus.choices, default=EmailStatus.DRAFT)
    status_reason = models.TextField(_("status reason"), blank=True)
    send_attempts = models.PositiveIntegerField(_("send attempts"), default=0)
    next_send_at = models.DateTimeField(_("next send attempt"), null=True, blank=True)
    regarding_account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("regarding account")
    )
    regarding_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("regarding contact")
    )
    regarding_lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("regarding lead")
    )
    regarding_appointment = models.ForeignKey(
        Appointment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("regarding appointment"),
    )
    # The mailbox it came through first (incoming) or goes out from (outgoing).
    mailbox = models.ForeignKey(
        "mailboxes.Mailbox",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("mailbox"),
    )
    tracked_by = models.CharField(_("tracked by"), max_length=30, choices=TrackedBy.choices, blank=True)

    class Meta(CrmRecord.Meta):
        ordering = ["-created_at"]
        verbose_name = _("email")
        verbose_name_plural = _("emails")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "message_id"],
                condition=~models.Q(message_id=""),
                name="one_email_per_message_id",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(
                        regarding_account__isnull=True, regarding_contact__isnull=True, regarding_lead__isnull=True
                    )
                    | models.Q(
                        regarding_account__isnull=True,
                        regarding_contact__isnull=True,
                        regarding_appointment__isnull=True,
                    )
                    | models.Q(
                        regarding_account__isnull=True, regarding_lead__isnull=True, regarding_appointment__isnull=True
                    )
                    | models.Q(
                        regarding_contact__isnull=True, regarding_lead__isnull=True, regarding_appointment__isnull=True
                    )
                ),
                name="email_regards_one_record",
                violation_error_message=_("An email regards one record at most."),
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "next_send_at"], name="crm_email_to_send"),
            models.Index(fields=["organization", "-created_at"], name="crm_email_recent"),
        ]

    def __str__(self) -> str:
        return self.subject or str(_("(no subject)"))

    @property
    def regarding(self) -> Any:
        return self.regarding_account or self.regarding_contact or self.regarding_lead or self.regarding_appointment


class RecipientKind(models.TextChoices):
    FROM = "from", _("From")
    TO = "to", _("To")
    CC = "cc", _("Cc")


class EmailRecipient(models.Model):
    """An address of an email and the CRM record or user it belongs to, when one matches."""

    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="recipients")
    kind = models.CharField(_("kind"), max_length=4, choices=RecipientKind.choices)
    address = models.CharField(_("address"), max_length=320)
    name = models.CharField(_("name"), max_length=255, blank=True)
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    lead = models.ForeignKey(Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    account = models.ForeignKey(Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "kind", "address"], name="one_recipient_per_address")]
        indexes = [models.Index(fields=["address"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.address}"

    @property
    def record(self) -> Any:
        return self.contact or self.lead or self.account or self.user


class EmailReceipt(models.Model):
    """An email as it arrived in (or left from) one mailbox: the server's id for it there."""

    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="receipts")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="email_receipts")
    # EWS item id, "<uidvalidity>:<uid>" for IMAP, the UIDL for POP3.
    source_id = models.CharField(_("server id"), max_length=512, blank=True)
    folder = models.CharField(_("folder"), max_length=255, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "mailbox"], name="one_receipt_per_mailbox")]
        indexes = [models.Index(fields=["mailbox", "source_id"])]

    def __str__(self) -> str:
        return f"{self.email} in {self.mailbox}"


class TrackedFolder(models.Model):
    """Folder-level tracking: every message in a folder under the Inbox regards one CRM record."""

    MAX_PER_MAILBOX = 25

    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="tracked_folders")
    folder_name = models.CharField(_("folder"), max_length=255)
    folder_id = models.CharField(_("folder id"), max_length=512, blank=True)
    regarding_account = models.ForeignKey(Account, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    regarding_contact = models.ForeignKey(Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    regarding_lead = models.ForeignKey(Lead, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    sync_state = models.TextField(blank=True)
    # Why the last incoming run could not read the folder ("" when it could): the Inbox and the
    # other folders go on, and the folder is looked for by name again (syncjobs/mail/channel.py).
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "folder_name"], name="one_tracking_per_folder"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox} / {self.folder_name}"

    @property
    def regarding(self) -> Any:
        return self.regarding_account or self.regarding_contact or self.regarding_lead


class QueueItemStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    DONE = "done", _("Done")


class QueueItem(models.Model):
    """An email that arrived in a queue's mailbox, waiting for a member to work on it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    queue = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="queue_items")
    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="queue_items")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=QueueItemStatus.choices, default=QueueItemStatus.ACTIVE
    )
    created = models.DateTimeField(_("entered the queue"), default=timezone.now)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["queue", "email"], name="one_item_per_queue_email")]

    def __str__(self) -> str:
        return f"{self.queue} / {self.email}"


class IgnoredMessage(models.Model):
    """A message the incoming channel could not take (malformed, too large, forwarded without an
    attachment, ...): recorded with its reason so it is neither retried forever nor lost silently."""

    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="ignored_messages")
    source_id = models.CharField(_("server id"), max_length=512)
    message_id = models.CharField(_("Message-ID"), max_length=998, blank=True)
    subject = models.CharField(_("subject"), max_length=998, blank=True)
    reason = models.TextField(_("reason"))
    created = models.DateTimeField(_("recorded"), default=timezone.now)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["mailbox", "source_id"], name="one_ignored_per_item")]
        # The mailbox pages list a mailbox's latest ignored messages.
        indexes = [models.Index(fields=["mailbox", "-created"], name="crm_ignored_latest")]

    def __str__(self) -> str:
        return f"{self.mailbox}: {self.reason[:60]}"
