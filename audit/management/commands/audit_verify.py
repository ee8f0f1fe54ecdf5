"""manage.py audit_verify [--expect-head SEQ:HASH] [--archive FILE ...]: check the audit log's hash chain."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from audit import triggers
from audit.archive import check_head, events, verify_archive, verify_database

HEAD = re.compile(r"^(\d{1,18}):([0-9a-f]{64})$")


def head(value: str) -> tuple[int, str]:
    """SEQ:HASH, as the command prints the head."""
    match = HEAD.match(value.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not SEQ:HASH as audit_verify prints the head")
    return int(match[1]), match[2]


class Command(BaseCommand):
    help = (
        "Walk the audit log's hash chain in order and report the first broken or missing link. "
        "Prints the head as SEQ:HASH: keep it outside the database and pass it back with --expect-head. "
        "Exits with status 1 when the chain does not hold."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--expect-head",
            type=head,
            metavar="SEQ:HASH",
            help="The head an earlier run printed: fail if that event is gone or its hash differs "
            "(the newest events removed, or the log rewritten).",
        )
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
        database = options["database"]
        result = verify_database(database)
        if result.ok:
            walk = result.walk
            span = f"seq {walk.first_seq}-{walk.last_seq}" if walk.count else "none"
            self.stdout.write(f"Audit log OK: {events(walk.count)} ({span}); head {walk.last_seq}:{walk.prev_hash}")
            if options["expect_head"]:
                ok, found = check_head(*options["expect_head"], walk, database)
                if ok:
                    self.stdout.write(f"Expected head: {found}")
                else:
                    failures.append(f"Expected head not found: {found}")
        else:
            failures.append(f"Audit log broken at {result.failure}")
        connection = connections[database]
        if gone := triggers.missing(connection):
            failures.append(
                f"The append-only triggers are missing or disabled: {', '.join(gone)}. "
                "manage.py migrate puts them back; until then plain SQL can change or delete events."
            )
        left = triggers.maintenance_rows(connection)
        if left:
            failures.append(
                f"audit_maintenance holds {len(left)} committed row(s) ({', '.join(sorted(set(left)))}): "
                "while it does, the triggers let anyone delete audit events. Remove them with "
                "DELETE FROM audit_maintenance (as the tables' owner)."
            )
        elif left is None:
            self.stdout.write("audit_maintenance cannot be read by this database role: not checked.")
        for name in options["archive"]:
            archived = verify_archive(Path(name), database)
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
