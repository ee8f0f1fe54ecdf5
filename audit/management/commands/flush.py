"""Django's flush, allowed to empty the audit tables: the test suite flushes between
transactional tests, and the audit tables' triggers refuse deletions outside maintenance
(audit/chain.py). Everything else is Django's own command."""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections, transaction

from audit import chain


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        database = options["database"]
        if chain.MAINTENANCE_TABLE not in connections[database].introspection.table_names():
            super().handle(**options)  # not migrated yet: no triggers either
            return
        with transaction.atomic(using=database), chain.maintenance(database, "flush"):
            super().handle(**options)
