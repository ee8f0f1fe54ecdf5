"""Alerts: something an administrator must know about a mailbox or a server profile.

An alert is raised (monitoring.alerts.raise_alert) by the sync engine (a channel disabled, a
mass delete refused) and by the scheduler's monitoring pass (a mailbox stalled, a profile
flagged). One alert stays unresolved per kind and subject: an administrator acknowledges it,
and it is resolved by itself when its cause is gone (monitoring.alerts.resolve_cleared).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, override
from django.utils.translation import gettext_lazy as _

from audit.log import Actor, record
from mailboxes.models import Channel, EmailServerProfile, Mailbox, Organization


class AlertKind(models.TextChoices):
    CHANNEL_DISABLED = "channel_disabled", _("Channel disabled")
    PROFILE_FLAGGED = "profile_flagged", _("Server profile failing")
    MASS_DELETE_REFUSED = "mass_delete_refused", _("Mass delete refused")
    MAILBOX_STALLED = "mailbox_stalled", _("Mailbox stalled")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Resolved")


UNRESOLVED = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


def advice(kind: str) -> str:
    """What to do about an alert of this kind (or a failing mailbox's same cause, on the monitoring page)."""
    if kind == AlertKind.CHANNEL_DISABLED:
        return gettext(
            "Correct the cause (the credentials of the mailbox or its server profile, the address, the "
            "server), then run Test & Enable again."
        )
    if kind == AlertKind.MASS_DELETE_REFUSED:
        return gettext(
            "Nothing was deleted. Check the owner's sync filters; if the deletes are right, confirm them "
            "on the mailbox page."
        )
    if kind == AlertKind.MAILBOX_STALLED:
        return gettext(
            "Check on this page that workers are running and the queue is not backed up; the mailbox page "
            "says why it cannot sync, and Sync now tries at once."
        )
    return gettext(
        "Check the profile's connection settings and the server: when many mailboxes fail at once, the "
        "cause is usually shared."
    )


class AlertQuerySet(models.QuerySet):
    def unresolved(self) -> AlertQuerySet:
        return self.filter(status__in=UNRESOLVED)


class Alert(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("organization")
    )
    kind = models.CharField(_("kind"), max_length=30, choices=AlertKind.choices)
    # The subject: a mailbox (and for a disabled channel, which one) or a server profile.
    mailbox = models.ForeignKey(
        Mailbox, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts", verbose_name=_("mailbox")
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices, blank=True)
    profile = models.ForeignKey(
        EmailServerProfile,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("server profile"),
    )
    # The reason as the engine or the server gave it (English, like a run's error).
    detail = models.TextField(_("detail"), blank=True)
    # Figures the message is composed from in the reader's language ({"minutes": 15}, {"failing": 6, "total": 10}).
    data = models.JSONField(default=dict, blank=True)
    status = models.CharField(_("status"), max_length=15, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    created = models.DateTimeField(_("raised"), default=timezone.now)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    # Set when the email went out (or was claimed for sending): never sent twice.
    emailed_at = models.DateTimeField(_("emailed"), null=True, blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            # One unresolved alert per kind and subject: raising it again meanwhile does nothing.
            models.UniqueConstraint(
                fields=["kind", "mailbox", "channel"],
                condition=models.Q(status__in=UNRESOLVED, mailbox__isnull=False),
                name="one_unresolved_alert_per_mailbox",
            ),
            models.UniqueConstraint(
                fields=["kind", "profile"],
                condition=models.Q(status__in=UNRESOLVED, profile__isnull=False),
                name="one_unresolved_alert_per_profile",
            ),
            models.CheckConstraint(
                condition=models.Q(mailbox__isnull=False, profile__isnull=True)
                | models.Q(mailbox__isnull=True, profile__isnull=False),
                name="alert_about_a_mailbox_or_a_profile",
            ),
        ]
        indexes = [models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return self.title

    @property
    def subject(self) -> Mailbox | EmailServerProfile:
        return self.mailbox if self.mailbox_id else self.profile  # type: ignore[return-value]

    @property
    def subject_url(self) -> str:
        if self.mailbox_id:
            return reverse("mailbox-detail", args=[self.mailbox_id])
        return reverse("profile-detail", args=[self.profile_id])

    @property
    def is_open(self) -> bool:
        return self.status == AlertStatus.OPEN

    @property
    def title(self) -> str:
        """What happened, in one sentence in the active language."""
        values = {"mailbox": self.mailbox, "profile": self.profile, **self.data}
        if self.kind == AlertKind.CHANNEL_DISABLED:
            values["channel"] = Channel(self.channel).label if self.channel else ""
            return gettext("“%(channel)s” of mailbox %(mailbox)s was disabled after a permanent error.") % values
        if self.kind == AlertKind.MASS_DELETE_REFUSED:
            return (
                gettext(
                    "A sync of mailbox %(mailbox)s was stopped: it would have deleted an unusual share of its items."
                )
                % values
            )
        if self.kind == AlertKind.MAILBOX_STALLED:
            return gettext(
                "Mailbox %(mailbox)s is enabled but had not synced successfully for %(minutes)s minutes."
            ) % {"minutes": "?", **values}
        return gettext(
            "%(failing)s of the %(total)s mailboxes of server profile “%(profile)s” failed within the hour."
        ) % {"failing": "?", "total": "?", **values}

    @property
    def advice(self) -> str:
        """What to do about it."""
        return advice(self.kind)

    def acknowledge(self, actor: Actor) -> bool:
        """Mark an open alert acknowledged by an administrator, audited on its mailbox or profile.
        False if it was acknowledged or resolved already."""
        now = timezone.now()
        with transaction.atomic():
            done = Alert.objects.filter(pk=self.pk, status=AlertStatus.OPEN).update(
                status=AlertStatus.ACKNOWLEDGED, acknowledged_by=actor.user, acknowledged_at=now
            )
            if not done:
                return False
            self.status, self.acknowledged_by, self.acknowledged_at = AlertStatus.ACKNOWLEDGED, actor.user, now
            with override(settings.LANGUAGE_CODE):
                changes: dict[str, list[Any]] = {
                    "alert": ["", self.title],
                    "status": [str(AlertStatus.OPEN.label), str(AlertStatus.ACKNOWLEDGED.label)],
                }
            record(actor, "alert.acknowledged", self.subject, changes=changes, organization=self.organization)
        return True
