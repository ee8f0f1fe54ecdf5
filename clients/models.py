"""Client instances (the desktop client on each of a user's computers), their requests to become
the synchronizing instance, and what the client API stores: operation results, conflicts, the
records each instance holds, offline filters.

DOMAIN.md rule 3: a user may run the client on several computers, but only one instance is the
*sync instance*. A database constraint keeps it to one; another instance asks to take over with
a ``PromotionRequest`` that an approver decides (or the organization's policy auto-approves);
the old instance is demoted in the same transaction as the new one is promoted. Every step is
audited on the instance.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from audit.log import Actor, record
from audit.mixins import AuditedModel
from crm.models import CrmRecord, FilterRules, RecordType
from mailboxes.models import Membership, Organization

REASON_MAX = 500
# last_seen_at is written at most this often per instance (not on every API call).
SEEN_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """The stored form of an API token: its sha256 in hex. The token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class ClientError(Exception):
    """A client-instance step that cannot be taken now; the message says why, in words."""


class AlreadyDecided(ClientError):
    pass


class RequestPending(ClientError):
    pass


class AlreadySynchronizing(ClientError):
    pass


class InstanceRevoked(ClientError):
    pass


class ConflictClosed(ClientError):
    pass


class RecordGone(ClientError):
    pass


def synchronizing_organization(user: Any) -> Organization | None:
    """The user's synchronizing organization (DOMAIN.md rule 1), else their first one, else None."""
    membership = (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("-is_sync_organization", "organization__name")
        .first()
    )
    return membership.organization if membership else None


class ClientInstanceQuerySet(models.QuerySet):
    def active(self) -> ClientInstanceQuerySet:
        return self.filter(revoked_at__isnull=True)


class ClientInstance(AuditedModel):
    """One computer's client of one user. The API token is shown once; only its hash is kept."""

    audit_name = "client_instance"
    # Never the token hash: the audit log holds nothing that opens the API.
    audit_fields = ("name", "machine", "client_version", "is_sync_instance", "revoked_at")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="client_instances", verbose_name=_("user")
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="client_instances", verbose_name=_("organization")
    )
    name = models.CharField(_("name"), max_length=100)
    machine = models.CharField(_("computer"), max_length=100)
    client_version = models.CharField(_("client version"), max_length=50)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_sync_instance = models.BooleanField(_("synchronizing instance"), default=False)
    created_at = models.DateTimeField(_("registered"), default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)

    objects = ClientInstanceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("client instance")
        verbose_name_plural = _("client instances")
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(is_sync_instance=True),
                name="one_sync_instance_per_user",
                violation_error_message=_("A user has one synchronizing client instance."),
            ),
            models.CheckConstraint(
                condition=models.Q(is_sync_instance=False) | models.Q(revoked_at__isnull=True),
                name="revoked_instance_does_not_sync",
                violation_error_message=_("A revoked client instance is not the synchronizing one."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.machine})"

    def audit_organization(self) -> Organization:
        return self.organization

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    @sensitive_variables("token")
    def register(
        cls, actor: Actor, user: Any, organization: Organization, name: str, machine: str, client_version: str
    ) -> tuple[ClientInstance, str]:
        """A new instance and its token (returned once, stored hashed).

        1. Lock the user's row: two first registrations at once do not both become the sync instance.
        2. The user's first instance ever is the synchronizing one at once; later ones are not, and
           ask to become it (``request_promotion``). A user who revoked every instance registers
           the next one as a plain instance too: taking over is always a request.
        """
        token = secrets.token_urlsafe(32)
        with transaction.atomic():
            list(get_user_model().objects.select_for_update().filter(pk=user.pk))
            first = not cls.objects.filter(user=user).exists()
            instance = cls(
                user=user,
                organization=organization,
                name=name,
                machine=machine,
                client_version=client_version,
                token_hash=hash_token(token),
                is_sync_instance=first,
            )
            instance.save_audited(actor, "client_instance.registered")
        return instance, token

    @classmethod
    @sensitive_variables("token")
    def for_token(cls, token: str) -> ClientInstance | None:
        """The live instance a token opens, or None (unknown, revoked, or its user deactivated)."""
        return (
            cls.objects.active()
            .select_related("user", "organization")
            .filter(token_hash=hash_token(token), user__is_active=True)
            .first()
        )

    def touch(self, now: Any) -> None:
        """Remember when the client was last seen: one conditional UPDATE at most a minute."""
        if self.last_seen_at is None or self.last_seen_at < now - SEEN_EVERY:
            ClientInstance.objects.filter(pk=self.pk).update(last_seen_at=now)
            self.last_seen_at = now

    def pending_request(self) -> PromotionRequest | None:
        return self.promotion_requests.filter(status=RequestStatus.PENDING).first()

    def request_promotion(self, actor: Actor, reason: str) -> PromotionRequest:
        """Ask for this instance to become the synchronizing one.

        1. Lock the user's pending requests, then the user's instances (the order approvals
           lock in too). One pending request per user: another is a RequestPending.
        2. A revoked instance or the sync instance itself cannot ask.
        3. Create the request (audited); if the organization auto-approves instance changes,
           approve it at once in the same transaction, as the system.
        """
        reason = (reason or "").strip()[:REASON_MAX]
        with transaction.atomic():
            if PromotionRequest.objects.select_for_update().filter(user_id=self.user_id, status=RequestStatus.PENDING):
                raise RequestPending(gettext("A request to change the synchronizing instance is already pending."))
            instances = _lock_instances(self.user_id)
            me = instances[self.pk]
            if me.is_revoked:
                raise InstanceRevoked(gettext("This client instance was revoked."))
            if me.is_sync_instance:
                raise AlreadySynchronizing(gettext("This client instance is already the synchronizing one."))
            current = next((i for i in instances.values() if i.is_sync_instance), None)
            request = PromotionRequest(
                instance=me, user_id=self.user_id, organization_id=me.organization_id, previous=current, reason=reason
            )
            try:
                with transaction.atomic():
                    request.save()
            except IntegrityError:
                raise RequestPending(
                    gettext("A request to change the synchronizing instance is already pending.")
                ) from None
            changes = {"reason": ["", reason]} if reason else {}
            record(actor, "client_instance.promotion_requested", me, changes=changes, organization=me.organization)
            if me.organization.auto_approve_instance_changes:
                request.approve(Actor(ip=actor.ip, name="auto-approval"), auto=True)
        return request

    def revoke(self, actor: Actor) -> bool:
        """Revoke the token: the instance no longer reaches the API, and stops being the sync
        instance. Its pending request is withdrawn. False if it was revoked already."""
        with transaction.atomic():
            for request in PromotionRequest.objects.select_for_update().filter(
                instance_id=self.pk, status=RequestStatus.PENDING
            ):
                request.cancel(actor)
            locked = ClientInstance.objects.select_for_update().get(pk=self.pk)
            if locked.is_revoked:
                self.revoked_at, self.is_sync_instance = locked.revoked_at, locked.is_sync_instance
                return False
            self.revoked_at = timezone.now()
            self.is_sync_instance = False
            self.save_audited(actor, "client_instance.revoked", update_fields=["revoked_at", "is_sync_instance"])
            HeldRecord.objects.filter(instance_id=self.pk).delete()
        return True


def _lock_instances(user_id: Any) -> dict[Any, ClientInstance]:
    """The user's instances, locked (select_for_update), in a stable order."""
    # of=("self",): lock the instances only, not their organization's row (select_related joins it).
    rows = ClientInstance.objects.select_for_update(of=("self",)).select_related("organization")
    rows = rows.filter(user_id=user_id)
    return {instance.pk: instance for instance in rows.order_by("pk")}


class RequestStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Withdrawn")


class PromotionRequest(models.Model):
    """An instance asks to become its user's synchronizing instance; an approver decides."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(
        ClientInstance,
        on_delete=models.CASCADE,
        related_name="promotion_requests",
        verbose_name=_("requested instance"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", verbose_name=_("organization")
    )
    # The synchronizing instance when the request was made; on approval, the one demoted.
    previous = models.ForeignKey(
        ClientInstance,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("current instance"),
    )
    reason = models.TextField(_("reason"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    created_at = models.DateTimeField(_("requested"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_by_name = models.CharField(_("decided by"), max_length=150, blank=True)
    decision_reason = models.TextField(_("decision reason"), blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("sync instance change request")
        verbose_name_plural = _("sync instance change requests")
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(status="pending"),
                name="one_pending_promotion_per_user",
                violation_error_message=_("A request to change the synchronizing instance is already pending."),
            )
        ]
        indexes = [models.Index(fields=["organization", "status", "created_at"])]

    def __str__(self) -> str:
        return gettext("%(user)s: %(instance)s") % {"user": self.user, "instance": self.instance}

    def _decided(self, locked: PromotionRequest) -> AlreadyDecided:
        when = timezone.localtime(locked.decided_at).strftime("%Y-%m-%d %H:%M") if locked.decided_at else ""
        texts = {
            RequestStatus.APPROVED: gettext("This request was already approved by %(who)s at %(when)s."),
            RequestStatus.REJECTED: gettext("This request was already rejected by %(who)s at %(when)s."),
            RequestStatus.CANCELLED: gettext("This request was withdrawn at %(when)s."),
        }
        return AlreadyDecided(texts[locked.status] % {"who": locked.decided_by_name, "when": when})

    def _lock_pending(self) -> PromotionRequest:
        locked = PromotionRequest.objects.select_for_update().get(pk=self.pk)
        if locked.status != RequestStatus.PENDING:
            raise self._decided(locked)
        return locked

    def _close(self, actor: Actor, status: str, reason: str) -> None:
        self.status = status
        self.decided_at = timezone.now()
        user = actor.user if actor.user is not None and actor.user.is_authenticated else None
        self.decided_by = user
        self.decided_by_name = actor.display_name[:150]
        self.decision_reason = reason
        self.save(
            update_fields=["status", "decided_at", "decided_by", "decided_by_name", "decision_reason", "previous"]
        )

    def approve(self, actor: Actor, reason: str = "", auto: bool = False) -> None:
        """Make the requested instance the synchronizing one, demoting the old one: one transaction.

        1. Lock the request; one already decided is an AlreadyDecided (approving twice, or two
           approvers at once: the second waits for the first's lock, then finds it decided).
        2. Lock the user's instances; demote the synchronizing one first (the partial unique
           index is checked per statement), then promote the requested one.
        3. Close the request; each step is an audit event on its instance.
        """
        reason = (reason or "").strip()[:REASON_MAX]
        with transaction.atomic():
            locked = self._lock_pending()
            instances = _lock_instances(self.user_id)
            target = instances[self.instance_id]
            if target.is_revoked:
                raise InstanceRevoked(gettext("The requested client instance was revoked."))
            locked.previous = None
            for other in instances.values():
                if other.is_sync_instance and other.pk != target.pk:
                    other.is_sync_instance = False
                    other.save_audited(actor, "client_instance.demoted", update_fields=["is_sync_instance"])
                    locked.previous = other
            target.is_sync_instance = True
            target.save(update_fields=["is_sync_instance"])
            action = "client_instance.promotion_auto_approved" if auto else "client_instance.promotion_approved"
            changes: dict[str, list[Any]] = {"is_sync_instance": [False, True]}
            if reason:
                changes["decision_reason"] = ["", reason]
            record(actor, action, target, changes=changes, organization=target.organization)
            locked._close(actor, RequestStatus.APPROVED, reason)
        self._copy(locked)

    def reject(self, actor: Actor, reason: str) -> None:
        """Refuse the request; a reason is required (the user reads it)."""
        reason = (reason or "").strip()[:REASON_MAX]
        if not reason:
            raise ValidationError(gettext("Give a reason for the rejection: the user reads it."))
        with transaction.atomic():
            locked = self._lock_pending()
            record(
                actor,
                "client_instance.promotion_rejected",
                locked.instance,
                changes={"decision_reason": ["", reason]},
                organization=locked.organization,
            )
            locked._close(actor, RequestStatus.REJECTED, reason)
        self._copy(locked)

    def cancel(self, actor: Actor) -> None:
        """Withdraw a pending request (its instance was revoked). Called inside a transaction."""
        record(actor, "client_instance.promotion_cancelled", self.instance, organization=self.organization)
        self._close(actor, RequestStatus.CANCELLED, "")

    def _copy(self, other: PromotionRequest) -> None:
        for name in ("status", "decided_at", "decided_by_id", "decided_by_name", "decision_reason", "previous_id"):
            setattr(self, name, getattr(other, name))


# What the client API stores ------------------------------------------------------------------


class ClientOperation(models.Model):
    """The result of one pushed operation, by the client's op_id: a replay gets it back, and
    nothing is applied twice."""

    instance = models.ForeignKey(ClientInstance, on_delete=models.CASCADE, related_name="+")
    op_id = models.CharField(max_length=100)
    # sha256 of the operation as sent: the same op_id with another operation is refused.
    digest = models.CharField(max_length=64)
    result = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instance", "op_id"], name="one_result_per_op")]


class ConflictStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class ClientConflict(models.Model):
    """A client's change based on a version the record no longer has: nothing was overwritten;
    both versions are kept here (DOMAIN.md rule 4, ours).

    ``base`` is what the client's change was based on (``{"version": n}``: the portal keeps no
    old field values); ``theirs`` the record as the portal holds it (version, deleted, fields);
    ``ours`` the client's change (``{"fields": {...}}`` or ``{"deleted": true}``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(
        ClientInstance, on_delete=models.CASCADE, related_name="conflicts", verbose_name=_("client instance")
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    record_type = models.CharField(_("record type"), max_length=20, choices=RecordType.choices)
    record_id = models.UUIDField(_("record id"))
    op_id = models.CharField(max_length=100)
    op = models.CharField(max_length=10)
    base = models.JSONField(default=dict)
    theirs = models.JSONField(default=dict)
    ours = models.JSONField(default=dict)
    status = models.CharField(_("status"), max_length=10, choices=ConflictStatus.choices, default=ConflictStatus.OPEN)
    created_at = models.DateTimeField(_("recorded"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("client conflict")
        verbose_name_plural = _("client conflicts")
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"{self.record_type} {self.record_id} ({self.op})"

    @property
    def is_delete(self) -> bool:
        return bool(self.ours.get("deleted"))

    def sent_fields(self) -> dict[str, Any]:
        """The fields the client sent (only those the client API syncs), as JSON values."""
        from crm.directions import SYNC_FIELDS

        synced = SYNC_FIELDS.get(self.record_type, ())
        return {name: value for name, value in (self.ours.get("fields") or {}).items() if name in synced}

    def resolve(self, actor: Actor, keep: str) -> CrmRecord | None:
        """Close the conflict keeping the CRM's record as it is ("crm") or the client's change ("client").

        1. Lock the conflict; a closed one is a ConflictClosed (resolving twice applies nothing twice).
        2. Lock the record, as the client's user may change it today (the push's rules). Gone
           (deleted, or no longer theirs) and the client's side wanted: the conflict is closed
           all the same, audited, and RecordGone says so.
        3. "client": the sent fields, validated as a push validates them, saved (a new version);
           or the client's delete. A value the record refuses is a ClientError: nothing changes.
        4. Close the conflict and audit which side was kept, with the fields before and after.
        """
        from clients.push import OpError, _assign
        from clients.records import fields_of
        from clients.scope import crm_role, crm_visibility
        from crm.models import SYNCED_MODELS

        if keep not in ("crm", "client"):
            raise ValueError(f"unknown side {keep!r}")
        gone = False
        with transaction.atomic():
            locked = ClientConflict.objects.select_for_update().filter(pk=self.pk).first()
            if locked is None or locked.status != ConflictStatus.OPEN:
                raise ConflictClosed(gettext("This conflict is closed already."))
            model = SYNCED_MODELS.get(locked.record_type)
            visible = crm_visibility(locked.user, locked.organization, crm_role(locked.user, locked.organization))
            obj = None
            if model is not None and visible is not None:
                obj = model.all_objects.select_for_update().filter(visible, pk=locked.record_id).first()
            changes: dict[str, list[Any]] = {"kept": ["", keep]}
            if obj is None or obj.is_deleted:
                gone = keep == "client"
                changes["record"] = ["", gettext("deleted")]
            else:
                changes["record"] = ["", f"{locked.record_type} {obj}"]
            if keep == "client" and not gone:
                before = fields_of(locked.record_type, obj)
                if locked.is_delete:
                    obj.delete()
                    changes["deleted"] = [False, True]
                else:
                    try:
                        changed = _assign(obj, locked.record_type, locked.sent_fields())
                    except OpError as error:
                        raise ClientError(str(error)) from None
                    if changed:
                        obj.save(update_fields=changed)
                    after = fields_of(locked.record_type, obj)
                    changes.update({name: [before[name], after[name]] for name in changed})
            locked.status = ConflictStatus.CLOSED
            locked.save(update_fields=["status"])
            record(actor, "client_conflict.resolved", locked, changes=changes, organization=locked.organization)
        self.status = locked.status
        if gone:
            raise RecordGone(gettext("The record was deleted meanwhile: the conflict is closed, nothing was applied."))
        return obj


class Feed(models.TextChoices):
    CHANGES = "changes", _("Changes")
    OFFLINE = "offline", _("Offline")


class HeldRecord(models.Model):
    """A record the portal has sent to an instance as live, per feed: when it leaves the
    instance's filters (or is deleted, or changes owner), the feed sends it as deleted."""

    instance = models.ForeignKey(ClientInstance, on_delete=models.CASCADE, related_name="+")
    feed = models.CharField(max_length=10, choices=Feed.choices)
    record_type = models.CharField(max_length=20, choices=RecordType.choices)
    record_id = models.UUIDField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instance", "feed", "record_type", "record_id"], name="held_once")
        ]


class OfflineFilter(FilterRules):
    """Which records a user's client keeps for offline use, per record type.

    The same rules as a sync filter (crm/filters.py validates and compiles them); a user's
    enabled offline filters of one type are OR-ed. A user with no offline filter of any type
    takes their sync filters offline.
    """

    audit_name = "offline_filter"
    audit_fields = ("name", "record_type", "user", "enabled", "rules")

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", verbose_name=_("organization")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="offline_filters", verbose_name=_("user")
    )

    class Meta:
        ordering = ["record_type", "name"]
        verbose_name = _("offline filter")
        verbose_name_plural = _("offline filters")
        indexes = [models.Index(fields=["user", "organization"])]

    def clean(self) -> None:
        from crm.filters import validate_rules

        try:
            self.rules = validate_rules(self.record_type, self.rules)
        except ValidationError as error:
            raise ValidationError({"rules": error.messages}) from None
