"""Run one sync of a mailbox in the foreground and say what it did."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from mailboxes.models import Channel, Mailbox
from syncjobs.engine import run_sync
from syncjobs.models import RunStatus, SyncRun, Trigger


class Command(BaseCommand):
    help = (
        "Run one sync of the mailbox with this address in the foreground (not through a worker) and print what it "
        "did. Exits 0 when the run succeeded; non-zero with the reason when it failed, when the mailbox may not "
        "sync, or when another run of the mailbox and channel holds it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help="The mailbox's email address.")
        parser.add_argument(
            "--channel", default=Channel.ACT, choices=[Channel.ACT], help="What to sync (default: act)."
        )

    def handle(self, *args: Any, address: str, channel: str, **options: Any) -> None:
        mailbox = Mailbox.objects.select_related("organization", "profile").filter(address__iexact=address).first()
        if mailbox is None:
            raise CommandError(f"No mailbox has the address {address}.")
        if not mailbox.can_sync(channel):
            raise CommandError(
                f"{mailbox} may not sync {channel}: it must be active, have a server profile, an approved address, "
                "and have passed Test & Enable for that channel."
            )
        try:
            run = SyncRun.objects.create(mailbox=mailbox, channel=channel, trigger=Trigger.MANUAL)
        except IntegrityError:  # a queued run exists: run that one here
            run = SyncRun.objects.filter(mailbox=mailbox, channel=channel, status=RunStatus.QUEUED).first()
        done = run_sync(run.pk) if run else None
        if done is None:
            raise CommandError(f"Another run of {mailbox} ({channel}) holds it; nothing was done.")
        self._report(done)
        if done.status not in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
            raise CommandError(f"The run failed: {done.error}")

    def _report(self, run: SyncRun) -> None:
        seconds = run.duration.total_seconds() if run.duration else 0.0
        self.stdout.write(f"Run {run.pk}: {run.get_status_display()} in {seconds:.1f} s")
        for direction, label in (("to_exchange", "CRM → mailbox"), ("to_crm", "mailbox → CRM")):
            counts = run.counts.get(direction) or {}
            line = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing"
            self.stdout.write(f"  {label}: {line}")
        for key in ("unlinked", "removed_in_mailbox", "conflicts", "failed", "quarantined"):
            if run.counts.get(key):
                self.stdout.write(f"  {key.replace('_', ' ')}: {run.counts[key]}")
        if run.error:
            self.stdout.write(f"  note: {run.error}")
