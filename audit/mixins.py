"""Auditing for models: snapshot what was loaded, record what changed on save."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models, transaction

from audit.log import MASK, MASK_CHANGED, Actor, acting_as, current_actor, record

_MISSING = object()


class AuditedModel(models.Model):
    """A model whose saves and deletes through ``*_audited`` append audit events.

    1. ``from_db`` keeps the raw values of ``audit_fields`` as loaded (no queries).
    2. ``save_audited`` compares them with the current values, saves, and records
       one event in the same transaction; secrets appear only as masks.
    """

    audit_name: ClassVar[str] = ""
    audit_fields: ClassVar[tuple[str, ...]] = ()
    secret_fields: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: str, field_names: Any, values: Any, **kwargs: Any) -> Any:
        # **kwargs: Django 6.1 passes fetch_mode (and warns about overrides that refuse it).
        obj = super().from_db(db, field_names, values, **kwargs)
        obj._audit_loaded = obj._audit_raw()
        return obj

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, then remember the saved values: a later save_audited diffs against them.

        Without this, an object saved with plain ``save()`` (``objects.create``, a
        fixture, a command) would report every field as changed from None.
        """
        super().save(*args, **kwargs)
        raw = self._audit_raw()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            saved = set(update_fields)
            raw = {**getattr(self, "_audit_loaded", {}), **{k: v for k, v in raw.items() if k in saved}}
        self._audit_loaded = raw

    def audit_organization(self) -> Any:
        return None

    def _audit_raw(self) -> dict[str, Any]:
        raw = {}
        for name in self.audit_fields:
            value = self.__dict__.get(self._meta.get_field(name).attname, _MISSING)
            if value is not _MISSING:
                raw[name] = value
        return raw

    def _render(self, name: str, value: Any, *, current: bool) -> Any:
        field = self._meta.get_field(name)
        if value is None or value == "":
            return value
        if field.is_relation:
            related = getattr(self, name) if current else field.related_model._base_manager.filter(pk=value).first()
            return str(related) if related is not None else str(value)
        if hasattr(value, "isoformat"):
            return value.isoformat()
        if isinstance(value, (bool, int, float, str)):
            return value
        return str(value)

    def audit_changes(self) -> dict[str, list[Any]]:
        before = getattr(self, "_audit_loaded", {}) if not self._state.adding else {}
        changes: dict[str, list[Any]] = {}
        for name, new in self._audit_raw().items():
            old = before.get(name)
            if old == new or (self._state.adding and new in (None, "", False)):
                continue
            if name in self.secret_fields:
                changes[name] = [MASK if old else "", MASK_CHANGED if new else ""]
            else:
                changes[name] = [self._render(name, old, current=False), self._render(name, new, current=True)]
        return changes

    def save_audited(
        self,
        actor: Actor,
        action: str | None = None,
        *,
        extra_changes: dict[str, list[Any]] | None = None,
        **save_kwargs: Any,
    ) -> None:
        """Save, and record one event with the changed fields.

        ``extra_changes`` ({"reason": ["", "..."]}) are recorded in the same event beside
        the fields: what a person said about the change, not a field of the model.
        """
        adding = self._state.adding
        changes = self.audit_changes()
        if save_kwargs.get("update_fields") is not None:
            # Only what is saved is recorded: other unsaved edits are not changes yet.
            saved = set(save_kwargs["update_fields"])
            changes = {name: change for name, change in changes.items() if name in saved}
        changes.update(extra_changes or {})
        action = action or f"{self.audit_name}.{'created' if adding else 'updated'}"
        with transaction.atomic():
            self.save(**save_kwargs)
            if adding or changes:
                record(actor, action, self, changes=changes, organization=self.audit_organization())

    def delete_audited(self, actor: Actor) -> None:
        """Delete, recording this object's deletion and, by ``actor`` too, that of every
        audited object the deletion takes with it (``record_deletion``)."""
        with transaction.atomic(), acting_as(actor):
            record(actor, f"{self.audit_name}.deleted", self, organization=self.audit_organization())
            self.delete()


def record_deletion(sender: type[models.Model], instance: models.Model, origin: Any = None, **kwargs: Any) -> None:
    """pre_delete: an object deleted without ``delete_audited`` still leaves an event.

    1. The object a ``delete_audited`` deletes recorded its event already (origin is itself).
    2. Anything else was taken along: the memberships of a deleted user or organization
       (a cascade), or the rows of a queryset's delete. The event names the actor of the
       enclosing ``acting_as`` (the admin who deleted the user), else the system; it is
       written in the deletion's transaction, before the rows go.
    3. A user (not an audited model) records ``user.deleted`` the same way, once per
       organization the user was a member of (the memberships are still there: every
       pre_delete is sent before any row goes), so that its auditors see it; once with no
       organization for a user of none.
    """
    if not isinstance(instance, AuditedModel):
        for organization in _member_organizations(instance) or [None]:
            record(current_actor(), "user.deleted", instance, organization=organization)
    elif origin is not instance:
        record(current_actor(), f"{instance.audit_name}.deleted", instance, organization=instance.audit_organization())


def _member_organizations(user: models.Model) -> list[Any]:
    """The organizations of the user's memberships (mailboxes.Membership, ``user.memberships``;
    audit imports no other app)."""
    memberships = getattr(user, "memberships", None)
    if memberships is None:
        return []
    return [m.audit_organization() for m in memberships.select_related("organization").order_by("organization__name")]


def connect_deletion_records() -> None:
    """Connect ``record_deletion`` to each audited model and to the user model, one by one:
    a receiver for every sender would stop Django's fast deletes for every model."""
    from django.apps import apps
    from django.contrib.auth import get_user_model

    senders = [model for model in apps.get_models() if issubclass(model, AuditedModel)] + [get_user_model()]
    for sender in senders:
        models.signals.pre_delete.connect(record_deletion, sender=sender, dispatch_uid=f"audit-{sender._meta.label}")
