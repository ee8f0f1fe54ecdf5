"""The database triggers that keep the audit tables append-only against plain SQL.

UPDATE is refused always; DELETE (and TRUNCATE, on PostgreSQL) unless the deleting
transaction has a row in audit_maintenance (chain.maintenance: audit_prune, flush); on
SQLite, an INSERT of an id or seq already there too (INSERT OR REPLACE).

They are installed by migration 0002 and again after every ``migrate`` (apps.py): on
SQLite, a later migration that alters the audit table rebuilds it, and the rebuilt table
would have lost them. ``missing`` tells audit_verify when they are gone or disabled.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, transaction

from audit.chain import MAINTENANCE_TABLE

TABLES = ("audit_auditevent", "audit_auditanchor")
MESSAGE = "audit events are append-only (README: Audit log retention)"

POSTGRESQL = [
    f"CREATE TABLE IF NOT EXISTS {MAINTENANCE_TABLE} (reason varchar(200) NOT NULL)",
    f"""CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' AND EXISTS (SELECT 1 FROM {MAINTENANCE_TABLE}) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '{MESSAGE}: % refused on %', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$""",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        for table in TABLES
    ),
]
POSTGRESQL_NAMES = {f"{table}_append_only" for table in TABLES}

SQLITE = [f"CREATE TABLE IF NOT EXISTS {MAINTENANCE_TABLE} (reason varchar(200) NOT NULL)"]
for _table in TABLES:
    SQLITE += [
        f"CREATE TRIGGER IF NOT EXISTS {_table}_no_update BEFORE UPDATE ON {_table} "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused on {_table}'); END",
        f"CREATE TRIGGER IF NOT EXISTS {_table}_no_delete BEFORE DELETE ON {_table} "
        f"WHEN NOT EXISTS (SELECT 1 FROM {MAINTENANCE_TABLE}) "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused on {_table}'); END",
        # INSERT OR REPLACE deletes the row it replaces without firing DELETE triggers (unless
        # recursive_triggers is on, which the sqlite3 shell does not set): refuse any insert of
        # an id or seq that is there already. (PostgreSQL has no REPLACE; its upserts and MERGE
        # fire the UPDATE and DELETE triggers.)
        f"CREATE TRIGGER IF NOT EXISTS {_table}_no_replace BEFORE INSERT ON {_table} "
        f"WHEN EXISTS (SELECT 1 FROM {_table} WHERE id = NEW.id) "
        f"OR EXISTS (SELECT 1 FROM {_table} WHERE seq = NEW.seq) "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: INSERT of an existing id or seq refused on {_table}'); END",
    ]
SQLITE_NAMES = {f"{table}_{what}" for table in TABLES for what in ("no_update", "no_delete", "no_replace")}


def installable(connection: Any) -> bool:
    """The audit tables are there (migration 0002 or later applied) on a supported database."""
    return connection.vendor in ("postgresql", "sqlite") and set(TABLES) <= set(connection.introspection.table_names())


def install(connection: Any) -> None:
    """Create the triggers, or put back those missing (idempotent)."""
    statements = {"postgresql": POSTGRESQL, "sqlite": SQLITE}.get(connection.vendor, [])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def remove(connection: Any) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in TABLES:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS audit_append_only()")
        elif connection.vendor == "sqlite":
            for name in sorted(SQLITE_NAMES):
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        cursor.execute(f"DROP TABLE IF EXISTS {MAINTENANCE_TABLE}")


def missing(connection: Any) -> list[str]:
    """The triggers that are not there, or are disabled (PostgreSQL's ALTER TABLE ... DISABLE)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'")
            expected = POSTGRESQL_NAMES
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            expected = SQLITE_NAMES
        else:
            return []
        present = {name for (name,) in cursor.fetchall()}
    return sorted(expected - present)


def maintenance_rows(connection: Any) -> list[str] | None:
    """The reasons of the rows in audit_maintenance that every connection sees: none, unless a
    maintenance flag was committed (then the triggers allow DELETE to everyone). None when this
    database role may not read the table (the README's strict PostgreSQL privileges)."""
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(f"SELECT reason FROM {MAINTENANCE_TABLE}")  # noqa: S608 (a constant)
            return [reason for (reason,) in cursor.fetchall()]
    except DatabaseError:
        return None


def install_after_migrate(using: str = "default", **kwargs: Any) -> None:
    """post_migrate: put back triggers that a migration's table rebuild dropped."""
    from django.db import connections

    connection = connections[using]
    if installable(connection) and missing(connection):
        install(connection)
