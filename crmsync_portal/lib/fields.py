"""Model fields shared by the apps."""

from __future__ import annotations

from typing import Any

from django.db import models

from crmsync_portal.lib import crypto


class EncryptedTextField(models.TextField):
    """A secret stored as a Fernet token; Python code sees the plaintext.

    The empty string stays empty (no secret set), so forms and checks can
    tell "not set" apart without decrypting anything.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        return crypto.encrypt(value)


def encrypted_fields(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]
