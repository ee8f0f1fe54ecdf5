"""The append-only audit log.

audit imports no other app of the portal: organizations and objects are
recorded by id and text, so an event outlives what it describes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, router, transaction
from django.db.models.fields.related_descriptors import ForwardManyToOneDescriptor
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from audit import chain, display
from audit.actions import action_label, codes_matching

# A search of more words than this uses the first ones only (each word is one more set of
# conditions in the query).
SEARCH_WORDS = 8


class AppendOnlyError(Exception):
    """Audit events are never changed or deleted."""


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses every way the ORM has to change or remove rows (the database's triggers
    refuse plain SQL; audit/chain.py)."""

    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def _update(self, values: Any) -> Any:
        raise AppendOnlyError("Audit events cannot be updated.")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("Audit events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")

    def _raw_delete(self, using: str) -> int:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditEventQuerySet(AppendOnlyQuerySet):
    def bulk_create(self, objs: Any, batch_size: int | None = None, **kwargs: Any) -> list[AuditEvent]:
        """Insert new events in one transaction, each linked into the chain in the given order.

        Conflict handling (``ignore_conflicts``, ``update_conflicts``) is refused: an
        "insert" that updates an existing event, or skips one in the middle of the chain.
        """
        if any(kwargs.get(name) for name in ("ignore_conflicts", "update_conflicts", "update_fields", "unique_fields")):
            raise AppendOnlyError("Audit events are only inserted: no conflict handling.")
        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            chain.lock(self.db)
            seq, prev_hash = head(self.db)
            for obj in objs:
                seq, prev_hash = obj.link(seq + 1, prev_hash)
            return super().bulk_create(objs, batch_size=batch_size)

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


class KeptActorDescriptor(ForwardManyToOneDescriptor):
    """``event.actor`` is None once the user is deleted (``actor_id`` stays as recorded)."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        try:
            return super().__get__(instance, cls)
        except self.field.related_model.DoesNotExist:
            return None


class KeptForeignKey(models.ForeignKey):
    """A reference the database does not enforce and a deletion does not touch: deleting a
    user leaves ``actor_id`` as it was, so the event's content (and its hash) never changes."""

    forward_related_accessor_class = KeptActorDescriptor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(on_delete=models.DO_NOTHING, db_constraint=False)
        super().__init__(*args, **kwargs)


class AuditEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The event's place in the hash chain: 1, 2, 3, ... in the order events were written.
    seq = models.BigIntegerField(_("sequence number"), unique=True, editable=False)
    time = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = KeptForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("actor"), null=True, blank=True, related_name="+", db_index=False
    )
    # Kept as text too: the event must still name its actor after the user is deleted.
    actor_name = models.CharField(_("actor name"), max_length=150)
    ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    action = models.CharField(_("action"), max_length=100)
    object_type = models.CharField(_("object type"), max_length=100)
    object_id = models.CharField(_("object id"), max_length=64)
    object_repr = models.CharField(_("object"), max_length=255)
    organization_id = models.UUIDField(_("organization id"), null=True, blank=True)
    organization_name = models.CharField(_("organization"), max_length=200, blank=True)
    # {"field": [before, after]}; secrets are masked before they get here.
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    # SHA-256 (hex) of the previous event's hash and of this event's content (audit/chain.py).
    prev_hash = models.CharField(_("previous hash"), max_length=64, editable=False)
    hash = models.CharField(_("hash"), max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        # Django's own updates and deletes (save, the deletion collector) go through the base
        # manager: the append-only one.
        base_manager_name = "objects"
        # Each filter of the review pages, newest first, paginated by seq (keyset).
        indexes = [
            models.Index(fields=["organization_id", "-seq"], name="audit_org_seq"),
            models.Index(fields=["action", "-seq"], name="audit_action_seq"),
            models.Index(fields=["object_type", "object_id", "-seq"], name="audit_object_seq"),
            models.Index(fields=["actor", "-seq"], name="audit_actor_seq"),
            models.Index(fields=["actor_name", "-seq"], name="audit_actor_name_seq"),
        ]
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

    def chain_fields(self) -> dict[str, Any]:
        """What the hash covers, in its canonical form (audit/chain.py)."""
        return chain.canonical_fields(
            id=self.id,
            seq=self.seq,
            time=self.time,
            actor_id=self.actor_id,
            actor_name=self.actor_name,
            ip=self.ip,
            action=self.action,
            object_type=self.object_type,
            object_id=self.object_id,
            object_repr=self.object_repr,
            organization_id=self.organization_id,
            organization_name=self.organization_name,
            changes=self.changes,
            prev_hash=self.prev_hash,
        )

    def link(self, seq: int, prev_hash: str) -> tuple[int, str]:
        """Take chain position ``seq`` after ``prev_hash``; return (seq, hash) for the next."""
        if self.time is not None and timezone.is_naive(self.time):
            self.time = timezone.make_aware(self.time)
        # As the database will give it back: JSON types only.
        self.changes = json.loads(json.dumps(self.changes, cls=DjangoJSONEncoder))
        self.seq, self.prev_hash = seq, prev_hash
        self.hash = chain.digest(self.chain_fields())
        return self.seq, self.hash

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert the event at the end of the chain (the only way in besides bulk_create).

        1. Lock the chain (PostgreSQL: a transaction-scoped advisory lock; SQLite: the write
           lock that every transaction of the portal takes when it begins, IMMEDIATE).
        2. Read the head (the last event, or the last prune's anchor, or the genesis).
        3. Link and insert in the same transaction: the next writer waits at 1.
        """
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be updated.")
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        kwargs["force_insert"] = True
        with transaction.atomic(using=using, savepoint=False):
            chain.lock(using)
            seq, prev_hash = head(using)
            self.link(seq + 1, prev_hash)
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditAnchor(models.Model):
    """Where the chain continues after a prune: the last pruned event's seq and hash, and
    the archive that holds the pruned events (``manage.py audit_prune``)."""

    first_seq = models.BigIntegerField(_("first pruned sequence number"))
    # The hash the first pruned event was linked to (the previous anchor's, or the genesis).
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    seq = models.BigIntegerField(_("last pruned sequence number"), unique=True)
    hash = models.CharField(_("hash of the last pruned event"), max_length=64)
    count = models.BigIntegerField(_("events pruned"))
    before = models.DateTimeField(_("pruned events before"))
    archive_name = models.CharField(_("archive file"), max_length=255)
    archive_sha256 = models.CharField(_("archive SHA-256"), max_length=64)
    pruned_by = models.CharField(_("pruned by"), max_length=150)
    time = models.DateTimeField(_("time"), default=timezone.now)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        base_manager_name = "objects"
        verbose_name = _("audit log prune")
        verbose_name_plural = _("audit log prunes")

    def __str__(self) -> str:
        return f"{self.archive_name} (seq {self.first_seq}-{self.seq})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit anchors cannot be updated.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit anchors cannot be deleted.")


def head(using: str) -> tuple[int, str]:
    """The chain's end: (seq, hash) of the last event, else of the last prune, else the genesis."""
    last = AuditEvent.objects.using(using).order_by("-seq").values_list("seq", "hash").first()
    if last is None:
        last = AuditAnchor.objects.using(using).order_by("-seq").values_list("seq", "hash").first()
    return last or (0, chain.GENESIS)
