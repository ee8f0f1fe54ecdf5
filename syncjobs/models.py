"""What the sync engine stores: runs, folder states, item links, conflicts, tests.

SYNC.md names these records and the rules they keep. The ``SyncRun`` row is the
job: the RQ job carries only its id.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import RecordType
from mailboxes.models import Channel, Mailbox

# A running run whose heartbeat is older than this is dead (its worker was lost).
HEARTBEAT_STALE = timedelta(minutes=2)


class Phase(models.TextChoices):
    INITIAL = "initial", _("Initial")
    POLL = "poll", _("Poll")
    RESYNC = "resync", _("Resync")


class FolderState(models.Model):
    """One row per (mailbox, folder): where the mailbox side stands, and the CRM cursor."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folder_states")
    folder = models.CharField(_("folder"), max_length=100)
    sync_state = models.TextField(_("sync state"), blank=True)
    phase = models.CharField(_("phase"), max_length=10, choices=Phase.choices, default=Phase.INITIAL)
    last_poll_at = models.DateTimeField(_("last successful poll"), null=True, blank=True)
    # CRM records changed at or after this time are read again on the next run.
    crm_cursor = models.DateTimeField(_("CRM changes read up to"), null=True, blank=True)
    last_reconcile_at = models.DateTimeField(_("last full reconcile"), null=True, blank=True)
    filters_fingerprint = models.CharField(_("filters fingerprint"), max_length=64, blank=True)
    # Items that changed while a run was writing: the next run reads them whatever the sync state says.
    pending = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "folder"], name="one_state_per_folder")]

    def __str__(self) -> str:
        return f"{self.mailbox} / {self.folder}"


class LinkState(models.TextChoices):
    OK = "ok", _("In sync")
    CONFLICT = "conflict", _("Conflict")
    ERROR = "error", _("Error")
    QUARANTINED = "quarantined", _("Quarantined")
    REMOVED_IN_MAILBOX = "removed_in_mailbox", _("Removed in mailbox")


class ItemLink(models.Model):
    """A CRM record and the mailbox item it is paired with, and what both held when they last agreed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="item_links")
    record_type = models.CharField(_("record type"), max_length=20, choices=RecordType.choices)
    crm_id = models.UUIDField(_("CRM id"))
    exchange_id = models.CharField(_("mailbox item id"), max_length=512, blank=True)
    change_key = models.CharField(_("change key"), max_length=512, blank=True)
    crm_hash = models.CharField(max_length=64, blank=True)
    exchange_hash = models.CharField(max_length=64, blank=True)
    # The field values both sides held when they last agreed: the base of a per-field merge.
    base = models.JSONField(default=dict, blank=True)
    state = models.CharField(_("state"), max_length=20, choices=LinkState.choices, default=LinkState.OK)
    error_count = models.PositiveIntegerField(_("failures"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    next_retry_at = models.DateTimeField(_("next retry"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "record_type", "crm_id"], name="one_link_per_record"),
            models.UniqueConstraint(
                fields=["mailbox", "exchange_id"], condition=~models.Q(exchange_id=""), name="one_link_per_item"
            ),
        ]
        indexes = [models.Index(fields=["mailbox", "state"]), models.Index(fields=["crm_id"])]

    def __str__(self) -> str:
        return f"{self.record_type} {self.crm_id} ↔ {self.exchange_id[:16]}…"


class ConflictStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class Conflict(models.Model):
    """A field changed on both sides to different values: what each held, and what was applied."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="conflicts")
    link = models.ForeignKey(ItemLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="conflicts")
    record_type = models.CharField(_("record type"), max_length=20, choices=RecordType.choices)
    crm_id = models.UUIDField(_("CRM id"))
    fields = models.JSONField(_("fields in dispute"), default=list)
    base = models.JSONField(default=dict)
    crm_values = models.JSONField(default=dict)
    exchange_values = models.JSONField(default=dict)
    # {field: "crm" | "exchange"}: which side's value was applied.
    resolution = models.JSONField(default=dict)
    resolved_by = models.CharField(_("resolved by"), max_length=200, default="engine: later change wins")
    status = models.CharField(max_length=10, choices=ConflictStatus.choices, default=ConflictStatus.OPEN)
    created = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["mailbox", "status"])]

    def __str__(self) -> str:
        return f"{self.record_type} {self.crm_id}: {', '.join(self.fields)}"

    def settle(self, actor: Any, sides: dict[str, str], reason: str = "") -> bool:
        """Write the chosen side ({field: "crm" | "exchange"}) of each disputed field into the CRM
        record; the next sync carries it to the mailbox. False if the conflict was closed already
        or its record is gone.

        1. Lock the conflict; a closed one is left alone, and so is one whose record is gone.
        2. Take each field's value from its chosen side; save the record (a new version) only if
           that changes it.
        3. Close the conflict with who resolved it, and audit the change (with the reason).
        """
        from audit.log import record
        from crm.models import SYNCED_MODELS
        from syncjobs import mapping

        with transaction.atomic():
            conflict = Conflict.objects.select_for_update().filter(pk=self.pk, status=ConflictStatus.OPEN).first()
            model = SYNCED_MODELS.get(self.record_type)
            obj = model.all_objects.filter(pk=self.crm_id).first() if conflict and model else None
            if conflict is None or obj is None:
                return False
            values = {
                f: (conflict.crm_values if sides[f] == "crm" else conflict.exchange_values).get(f)
                for f in conflict.fields
            }
            before = mapping.crm_values(obj)
            changed = mapping.apply_to_record(obj, values)
            if changed:
                obj.save()
            after = mapping.crm_values(obj)
            conflict.resolution = {f: sides[f] for f in conflict.fields}
            conflict.resolved_by = actor.user.get_full_name() or actor.user.get_username()
            conflict.status = ConflictStatus.CLOSED
            conflict.closed_at = timezone.now()
            conflict.save(update_fields=["resolution", "resolved_by", "status", "closed_at"])
            changes = {"record": ["", f"{conflict.record_type} {obj}"]}
            if reason:
                changes["reason"] = ["", reason]
            changes |= {f: [shown(before.get(f)), shown(after.get(f))] for f in conflict.fields if f in changed}
            record(
                actor,
                "mailbox.conflict_resolved",
                self.mailbox,
                changes=changes,
                organization=self.mailbox.organization,
            )
        return True


def shown(value: Any) -> str:
    """A field's value as pages and the audit log show it: "—" for nothing, lists joined."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", _("Schedule")
    MANUAL = "manual", _("Sync now")
    TEST = "test", _("Test & Enable")
    RETRY = "retry", _("Retry")


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    PARTIAL = "partial", _("Partly succeeded")
    FAILED = "failed", _("Failed")


class ErrorKind(models.TextChoices):
    NONE = "", _("None")
    TRANSIENT = "transient", _("Temporary")
    PERMANENT = "permanent", _("Permanent")
    GUARD = "guard", _("Stopped by the mass-delete guard")
    LOST = "lost", _("Worker lost")


class SyncRunQuerySet(models.QuerySet):
    def active(self) -> SyncRunQuerySet:
        return self.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING))

    def stale(self, now: Any = None) -> SyncRunQuerySet:
        now = now or timezone.now()
        return self.filter(status=RunStatus.RUNNING, heartbeat_at__lt=now - HEARTBEAT_STALE)


class SyncRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="sync_runs")
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices, default=Channel.ACT)
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    status = models.CharField(_("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # An administrator confirmed the deletes the mass-delete guard stopped: this run may apply them.
    allow_mass_delete = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queued_at = models.DateTimeField(_("queued"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # {"to_exchange": {"created": n, "updated": n, "deleted": n}, "to_crm": {...}, "conflicts": n, ...}
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    error_kind = models.CharField(max_length=10, choices=ErrorKind.choices, blank=True, default="")

    objects = SyncRunQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "channel"], condition=models.Q(status="running"), name="one_running_run"
            ),
            models.UniqueConstraint(
                fields=["mailbox", "channel"], condition=models.Q(status="queued"), name="one_queued_run"
            ),
        ]
        indexes = [
            models.Index(fields=["mailbox", "channel", "-queued_at"]),
            models.Index(fields=["status"]),
            # Monitoring, /metrics and profile health read the runs that finished lately, and
            # each mailbox's last finished run.
            models.Index(fields=["finished_at"], name="syncrun_finished"),
            models.Index(fields=["mailbox", "-finished_at"], name="syncrun_mailbox_finished"),
            # /metrics counts every run by channel and outcome: read from this index, not the table.
            models.Index(fields=["channel", "status"], name="syncrun_channel_status"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox} {self.channel} {self.status}"

    @property
    def is_active(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def count(self, direction: str, action: str) -> int:
        return int(self.counts.get(direction, {}).get(action, 0))

    def other_counts(self) -> list[tuple[str, int]]:
        """The counts besides creates, updates and deletes that are not zero, in words."""
        labels = (
            ("unlinked", _("unlinked")),
            ("removed_in_mailbox", _("removed in mailbox")),
            ("conflicts", _("conflicts")),
            ("failed", _("failed")),
            ("quarantined", _("quarantined")),
            # Email runs (syncjobs/mail/channel.py)
            ("tracked", _("emails tracked")),
            ("existing", _("already in the CRM")),
            ("skipped", _("not tracked")),
            ("ignored", _("ignored")),
            ("sent", _("sent")),
            ("retry", _("to retry")),
            ("unsure", _("may have been sent")),
        )
        return [(label, self.counts[key]) for key, label in labels if self.counts.get(key)]


class TestRunStatus(models.TextChoices):
    __test__ = False
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")


class TestRun(models.Model):
    """One Test & Enable of one mailbox: the job row, with each channel's result in words."""

    __test__ = False
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="test_runs")
    status = models.CharField(max_length=10, choices=TestRunStatus.choices, default=TestRunStatus.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {channel: {"status": "success" | "failure" | "not_run", "message": "..."}}
    results = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-queued_at"]

    def __str__(self) -> str:
        return f"Test of {self.mailbox} ({self.status})"
