"""Model fields shared by the apps."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute
from django.views.decorators.debug import sensitive_variables

from crmsync_portal.lib import crypto


class Ciphertext(str):
    """A secret as stored (a Fernet token), not yet decrypted."""

    __slots__ = ()


class EncryptedAttribute(DeferredAttribute):
    """Decrypts on read, so loading a row never needs the keys.

    1. The instance holds the token as loaded (a Ciphertext), or the plaintext as set.
    2. Reading the attribute decrypts the token, every time, and leaves the stored
       token in place: audit snapshots and change checks compare tokens.
    3. Setting the plaintext the token already holds keeps the token (a form that
       keeps the stored secret, ``refresh_from_db``), so it is no change.
    """

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Ciphertext):
            return crypto.decrypt(value)
        return value

    @sensitive_variables()
    def __set__(self, instance: Any, value: Any) -> None:
        current = instance.__dict__.get(self.field.attname)
        if isinstance(current, Ciphertext) and value and not isinstance(value, Ciphertext):
            try:
                if crypto.decrypt(current) == value:
                    return
            except crypto.DecryptionError:
                pass
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    """A secret stored as a Fernet token; Python code sees the plaintext when it reads it.

    The empty string stays empty (no secret set), so forms and checks can
    tell "not set" apart without decrypting anything (``is_set``). A token that
    was loaded and not replaced is written back as it is, not re-encrypted.
    """

    descriptor_class = EncryptedAttribute

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return Ciphertext(value)

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        return stored_value(model_instance, self.attname)

    def value_from_object(self, obj: Any) -> Any:
        # Forms (their initial values) and serializers get the token, never the plaintext.
        return stored_value(obj, self.attname)

    @sensitive_variables()
    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value or isinstance(value, Ciphertext):
            return value
        return crypto.encrypt(value)


def stored_value(obj: Any, name: str) -> Any:
    """The secret as the instance holds it, without decrypting: a Ciphertext, a new plaintext, or ""."""
    if name not in obj.__dict__:
        getattr(obj, name)  # a deferred column: load it
    return obj.__dict__.get(name)


def is_set(obj: Any, name: str) -> bool:
    """Whether a secret is stored or set, without decrypting it."""
    return bool(stored_value(obj, name))


def can_decrypt(obj: Any, name: str) -> bool:
    """Whether the current ENCRYPTION_KEYS decrypt the stored secret (True when none is stored)."""
    value = stored_value(obj, name)
    if not isinstance(value, Ciphertext):
        return True
    try:
        crypto.decrypt(value)
    except (crypto.DecryptionError, crypto.EncryptionKeysError):
        return False
    return True


def encrypted_fields(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]
