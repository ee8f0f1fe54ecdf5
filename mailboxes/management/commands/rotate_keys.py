"""Re-encrypt every stored secret with the first key of ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from crmsync_portal.lib import crypto
from crmsync_portal.lib.fields import encrypted_fields


class Command(BaseCommand):
    help = (
        "Re-encrypt all stored secrets with the first key in ENCRYPTION_KEYS. To rotate: put a new key "
        "first in ENCRYPTION_KEYS (keep the old ones after it), run this command, then remove the old keys."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        with transaction.atomic():
            for model in apps.get_models():
                for name in encrypted_fields(model):
                    total += rotate_column(model, name)
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} secret(s)."))


def rotate_column(model: Any, field_name: str) -> int:
    """Rotate one column's tokens in place; the plaintext never leaves this function."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    column = quote(model._meta.get_field(field_name).column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} <> ''")  # noqa: S608 (quoted names)
        rows = cursor.fetchall()
        for row_pk, token in rows:
            cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {pk} = %s", [crypto.rotate(token), row_pk])  # noqa: S608
    return len(rows)
