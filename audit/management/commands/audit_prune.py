"""manage.py audit_prune --before DATE [--archive-dir DIR]: archive and remove old events."""

from __future__ import annotations

import datetime
import getpass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import dateparse, timezone

from audit.archive import PruneError, events, prune


def moment(value: str) -> datetime.datetime:
    """A date (midnight) or a date and time, in the portal's time zone unless it names one."""
    parsed = dateparse.parse_datetime(value)
    if parsed is None and (day := dateparse.parse_date(value)) is not None:
        parsed = datetime.datetime.combine(day, datetime.time())
    if parsed is None:
        raise CommandError(f"--before {value!r} is not a date: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM.")
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


class Command(BaseCommand):
    help = (
        "Write the audit events older than DATE to a gzip JSON-lines archive, then remove them, "
        "leaving an anchor from which audit_verify goes on (README: Audit log retention)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, metavar="DATE", help="YYYY-MM-DD or YYYY-MM-DDTHH:MM")
        parser.add_argument(
            "--archive-dir",
            type=Path,
            default=None,
            metavar="DIR",
            help="Where to write the archive (default: AUDIT_ARCHIVE_DIR).",
        )
        parser.add_argument("--by", default="", help="Who prunes, as the audit log records it (default: OS user).")
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        before = moment(options["before"])
        archive_dir = options["archive_dir"] or Path(settings.AUDIT_ARCHIVE_DIR)
        by = options["by"] or f"{getpass.getuser()} (audit_prune)"
        try:
            anchor = prune(before, archive_dir, by, options["database"])
        except PruneError as error:
            raise CommandError(str(error)) from None
        except DatabaseError as error:
            raise CommandError(
                f"The database refused the prune ({error}); nothing was pruned. In a deployment where the "
                "portal's role may not delete audit events, run audit_prune as the tables' owner."
            ) from None
        self.stdout.write(
            f"Pruned {events(anchor.count)} (seq {anchor.first_seq}-{anchor.seq}) into "
            f"{archive_dir / anchor.archive_name} (SHA-256 {anchor.archive_sha256}). "
            "Keep the archive: audit_verify --archive checks it."
        )
