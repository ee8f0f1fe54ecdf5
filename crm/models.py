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
