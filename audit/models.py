"""The append-only audit log.

audit imports no other app of the portal: organizations and objects are
recorded by id and text, so an event outlives what it describes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from audit import display
from audit.actions import action_label, codes_matching

# A search of more words than this uses the first ones only (each word is one more set of
# conditions in the query).
SEARCH_WORDS = 8


class AppendOnlyError(Exception):
    """Audit events are never changed or deleted."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")

    def for_object(self, obj: models.Model) -> AuditEventQuerySet:
        return self.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))

    def search(self, text: str) -> AuditEventQuerySet:
        """The events that match every word of ``text``, as a person types it.

        A word matches an event when it is part of (case-insensitively):
        1. the actor's user name as recorded, or the first or last name of the user;
        2. the object's text as recorded;
        3. the action code, or the label of the action in the active language or English
           ("approved" finds mailbox.approved: the labels are matched in Python, giving
           a list of codes);
        4. the recorded changes: field names and values, as JSON text. The JSON is cast to
           text on both SQLite and PostgreSQL; SQLite keeps non-ASCII characters as
           \\u escapes, so the word is also tried in that form.
        """
        queryset = self.annotate(changes_text=Cast("changes", models.TextField()))
        for word in text.split()[:SEARCH_WORDS]:
            escaped = json.dumps(word)[1:-1]
            condition = (
                models.Q(actor_name__icontains=word)
                | models.Q(actor__first_name__icontains=word)
                | models.Q(actor__last_name__icontains=word)
                | models.Q(object_repr__icontains=word)
                | models.Q(action__icontains=word)
                | models.Q(action__in=codes_matching(word))
                | models.Q(changes_text__icontains=word)
            )
            if escaped != word:
                condition |= models.Q(changes_text__icontains=escaped)
            queryset = queryset.filter(condition)
        return queryset


class AuditEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    time = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too: the event must still name its actor after the user is deleted.
    actor_name = models.CharField(_("actor name"), max_length=150)
    ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    action = models.CharField(_("action"), max_length=100, db_index=True)
    object_type = models.CharField(_("object type"), max_length=100)
    object_id = models.CharField(_("object id"), max_length=64)
    object_repr = models.CharField(_("object"), max_length=255)
    organization_id = models.UUIDField(_("organization id"), null=True, blank=True, db_index=True)
    organization_name = models.CharField(_("organization"), max_length=200, blank=True)
    # {"field": [before, after]}; secrets are masked before they get here.
    changes = models.JSONField(_("changes"), default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]  # id: a stable order for events of the same instant
        indexes = [models.Index(fields=["object_type", "object_id", "-time"])]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"

    @property
    def action_label(self) -> str:
        """The action in words ("Email address approved"); an unknown code in words."""
        return action_label(self.action)

    @property
    def object_type_label(self) -> str:
        return display.object_type_label(self.object_type)

    @property
    def change_list(self) -> list[display.Change]:
        """The changes as shown: field names, choice labels, Yes/No, dates in words."""
        return display.changes(self)

    @cached_property
    def object_url(self) -> str | None:
        """The object's page while the object exists and has one, whoever looks (one query).
        A page shows the link only to those who may open it: it sets this for all its events
        at once, for the viewer, with ``display.attach_object_urls``."""
        return display.object_urls([self]).get((self.object_type, self.object_id))

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be updated.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")
