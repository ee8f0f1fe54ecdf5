"""Pushed changes: ``POST /api/v1/changes`` (live changes and offline replays alike).

Each operation ``{"op_id", "op", "type", "id", "base_version", "fields"}`` gets one result
``{"op_id", "status", "id", "version", "conflict_id", "error"}``; ``status`` is ``applied``,
``conflict`` or ``error``. One operation's error never stops the others.

1. **Replays apply nothing twice.** The result of each operation is stored with its op_id,
   per instance, in the same transaction as the change it made; an op_id seen before returns
   the stored result (the same op_id with another operation is an error). Two requests
   replaying the same op_id at once: the second's insert hits the unique constraint, its
   transaction rolls back, and it returns the first's result.
2. **Stale versions are conflicts, never overwrites.** An update or delete carries the version
   it was based on; when the record has moved on, nothing is changed and a ClientConflict
   keeps both versions (the portal's and the client's). Deleting a record that is already
   deleted is applied: the outcome is what the client wanted, and nothing is lost.
3. **Someone else's record is "not found"** (404 semantics, as the portal's pages): the
   instance's organization, and for a plain user their own records only.
4. Creates may carry the id the client gave the record offline (a UUID); the portal's owner is
   the instance's user, its organization the instance's.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils.translation import gettext as _

from clients.models import ClientConflict, ClientInstance, ClientOperation
from clients.records import fields_of
from clients.scope import crm_role, crm_visibility
from crm.directions import SYNC_FIELDS
from crm.models import SYNCED_MODELS, CrmRecord

OPS = ("create", "update", "delete")
KEYS = {"op_id", "op", "type", "id", "base_version", "fields"}
OP_ID_MAX = 100


class OpError(Exception):
    """This operation is refused; the message says why."""


def result(op_id: Any, status: str, **values: Any) -> dict[str, Any]:
    return {"op_id": op_id, "status": status, "id": None, "version": None, "conflict_id": None, "error": None} | values


class Batch:
    """One request's operations, against one instance; the visibility is worked out once."""

    def __init__(self, instance: ClientInstance) -> None:
        self.instance = instance
        self.known: dict[str, tuple[str, dict[str, Any]]] = {}
        self.role = crm_role(instance.user, instance.organization)
        self.visible = crm_visibility(instance.user, instance.organization, self.role)

    def apply(self, operations: list[Any]) -> list[dict[str, Any]]:
        """Apply the operations in order; the results stored for op_ids seen before are read at once."""
        op_ids = [op.get("op_id") for op in operations if isinstance(op, dict) and isinstance(op.get("op_id"), str)]
        found = ClientOperation.objects.filter(instance=self.instance, op_id__in=op_ids)
        self.known = {
            op_id: (digest, stored) for op_id, digest, stored in found.values_list("op_id", "digest", "result")
        }
        return [self.apply_one(operation) for operation in operations]

    def apply_one(self, operation: Any) -> dict[str, Any]:
        """Apply one operation, or return the result stored for its op_id."""
        if not isinstance(operation, dict):
            return result(None, "error", error=_("An operation must be a JSON object."))
        op_id = operation.get("op_id")
        if not isinstance(op_id, str) or not 0 < len(op_id) <= OP_ID_MAX:
            return result(None, "error", error=_("op_id must be text of 1 to %(max)d characters.") % {"max": OP_ID_MAX})
        digest = hashlib.sha256(json.dumps(operation, sort_keys=True, default=str).encode()).hexdigest()
        if op_id in self.known:
            return self._stored(op_id, digest, *self.known[op_id])
        try:
            with transaction.atomic():
                try:
                    outcome = self._execute(op_id, operation)
                except OpError as error:
                    outcome = result(op_id, "error", error=str(error))
                ClientOperation.objects.create(instance=self.instance, op_id=op_id, digest=digest, result=outcome)
        except IntegrityError:
            # The same op_id was stored meanwhile (a concurrent replay): its result stands.
            row = ClientOperation.objects.filter(instance=self.instance, op_id=op_id).values_list("digest", "result")
            if not row:
                return result(op_id, "error", error=_("The operation could not be saved; send it again."))
            return self._stored(op_id, digest, *row[0])
        self.known[op_id] = (digest, outcome)
        return outcome

    def _stored(self, op_id: str, digest: str, stored_digest: str, stored: dict[str, Any]) -> dict[str, Any]:
        if stored_digest != digest:
            return result(op_id, "error", error=_("This op_id was used for another operation."))
        return stored

    # One operation --------------------------------------------------------------------------

    def _execute(self, op_id: str, operation: dict[str, Any]) -> dict[str, Any]:
        unknown = set(operation) - KEYS
        if unknown:
            raise OpError(_("Unknown keys: %(keys)s.") % {"keys": ", ".join(sorted(unknown))})
        op, record_type = operation.get("op"), operation.get("type")
        if op not in OPS:
            raise OpError(_("op must be create, update or delete."))
        if record_type not in SYNCED_MODELS:
            raise OpError(_("type must be contact, appointment or task."))
        if self.visible is None:
            raise OpError(_("You may not change CRM records in this organization."))
        fields = operation.get("fields")
        if op == "delete":
            if fields not in (None, {}):
                raise OpError(_("A delete takes no fields."))
            fields = {}
        elif not isinstance(fields, dict):
            raise OpError(_("fields must be a JSON object."))
        unknown = set(fields) - set(SYNC_FIELDS[record_type])
        if unknown:
            raise OpError(
                _("Unknown fields for a %(type)s: %(fields)s; the fields are %(known)s.")
                % {
                    "type": record_type,
                    "fields": ", ".join(sorted(unknown)),
                    "known": ", ".join(SYNC_FIELDS[record_type]),
                }
            )
        if op == "create":
            return self._create(op_id, record_type, operation.get("id"), fields)
        record_id = _uuid(operation.get("id"))
        base_version = operation.get("base_version")
        if isinstance(base_version, bool) or not isinstance(base_version, int) or base_version < 1:
            raise OpError(_("base_version must be the version the change was based on (a whole number from 1)."))
        model = SYNCED_MODELS[record_type]
        record = model.all_objects.select_for_update().filter(self.visible, pk=record_id).first()
        if record is None:
            raise OpError(_("Not found."))
        if op == "delete" and record.is_deleted:
            return result(op_id, "applied", id=str(record.pk), version=record.version)
        if record.version != base_version or record.is_deleted:
            return self._conflict(op_id, op, record_type, record, base_version, fields)
        if op == "delete":
            record.delete()
        else:
            changed = _assign(record, record_type, fields)
            if changed:
                record.save(update_fields=changed)
        return result(op_id, "applied", id=str(record.pk), version=record.version)

    def _create(self, op_id: str, record_type: str, given_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
        model = SYNCED_MODELS[record_type]
        record = model(organization=self.instance.organization, owner=self.instance.user)
        if given_id is not None:
            record.pk = _uuid(given_id)
            if model.all_objects.filter(pk=record.pk).exists():
                raise OpError(_("A record with this id exists already."))
        _assign(record, record_type, fields)
        record.save(force_insert=True)
        return result(op_id, "applied", id=str(record.pk), version=record.version)

    def _conflict(
        self, op_id: str, op: str, record_type: str, record: CrmRecord, base_version: int, fields: dict[str, Any]
    ) -> dict[str, Any]:
        conflict = ClientConflict.objects.create(
            instance=self.instance,
            user=self.instance.user,
            organization=self.instance.organization,
            record_type=record_type,
            record_id=record.pk,
            op_id=op_id,
            op=op,
            base={"version": base_version},
            theirs={"version": record.version, "deleted": record.is_deleted, "fields": fields_of(record_type, record)},
            ours={"deleted": True} if op == "delete" else {"fields": fields},
        )
        return result(op_id, "conflict", id=str(record.pk), version=record.version, conflict_id=str(conflict.pk))


def _uuid(value: Any) -> uuid.UUID:
    try:
        if isinstance(value, str):
            return uuid.UUID(value)
    except ValueError:
        pass
    raise OpError(_("id must be a record id (a UUID)."))


def _assign(record: CrmRecord, record_type: str, fields: dict[str, Any]) -> list[str]:
    """Set the fields on the record, validated like the portal's forms; the names that changed.

    1. Each value is converted by its model field (text, dates with a time zone, choices);
       JSON objects and lists go only where the field holds a list (attendees).
    2. Then the model's own checks: lengths, choices, required fields, the record's clean()
       (an appointment's end after its start; attendees normalised).
    """
    errors: list[str] = []
    changed = []
    for name, raw in fields.items():
        field = record._meta.get_field(name)
        try:
            value = _convert(field, raw)
        except ValidationError as error:
            errors.append(f"{name}: {' '.join(error.messages)}")
            continue
        if getattr(record, field.attname) != value:
            setattr(record, field.attname, value)
            changed.append(name)
    if errors:
        raise OpError(" ".join(errors))
    synced = set(SYNC_FIELDS[record_type])
    exclude = [f.name for f in record._meta.concrete_fields if f.name not in synced]
    try:
        record.clean_fields(exclude=exclude)
        record.clean()
    except ValidationError as error:
        raise OpError(" ".join(_messages(error))) from None
    return changed


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [f"{name}: {' '.join(ValidationError(errs).messages)}" for name, errs in error.error_dict.items()]
    return error.messages


def _convert(field: models.Field, raw: Any) -> Any:
    if isinstance(field, models.JSONField):
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ValidationError(_("a list of email addresses is expected."))
        return raw
    if raw is None:
        if field.null:
            return None
        if isinstance(field, (models.CharField, models.TextField)):
            return ""
        raise ValidationError(_("a value is required."))
    if isinstance(raw, (dict, list, bool)) and not isinstance(field, models.BooleanField):
        raise ValidationError(_("%(value)s is not a value for this field.") % {"value": json.dumps(raw)})
    if isinstance(field, (models.DateField, models.DateTimeField)) and not isinstance(raw, str):
        raise ValidationError(_("a date as text (ISO 8601) is expected."))
    value = field.to_python(raw)
    if isinstance(field, models.DateTimeField) and value is not None and value.tzinfo is None:
        raise ValidationError(_("the time needs a time zone (for example 2026-05-01T09:00:00Z)."))
    return value
