"""manage.py audit_verify [--archive FILE ...]: check the audit log's hash chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from audit import triggers
from audit.archive import events, verify_archive, verify_database


class Command(BaseCommand):
    help = (
        "Walk the audit log's hash chain in order and report the first broken or missing link. "
        "Exits with status 1 when the chain does not hold."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--archive",
            action="append",
            default=[],
            metavar="FILE",
            help="Also check an archive written by audit_prune (may be given more than once).",
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        failures = []
        result = verify_database(options["database"])
        if result.ok:
            walk = result.walk
            span = f"seq {walk.first_seq}-{walk.last_seq}" if walk.count else "none"
            self.stdout.write(f"Audit log OK: {events(walk.count)} ({span}); head hash {walk.prev_hash}")
        else:
            failures.append(f"Audit log broken at {result.failure}")
        if gone := triggers.missing(connections[options["database"]]):
            failures.append(
                f"The append-only triggers are missing or disabled: {', '.join(gone)}. "
                "manage.py migrate puts them back; until then plain SQL can change or delete events."
            )
        for name in options["archive"]:
            archived = verify_archive(Path(name), options["database"])
            if archived.ok:
                walk = archived.walk
                self.stdout.write(
                    f"Archive {name} OK: {events(walk.count)} (seq {walk.first_seq}-{walk.last_seq}), "
                    f"ends at the prune's anchor; last hash {walk.prev_hash}"
                )
            else:
                failures.append(f"Archive {name} broken at {archived.failure}")
        if failures:
            raise CommandError("\n".join(failures))
