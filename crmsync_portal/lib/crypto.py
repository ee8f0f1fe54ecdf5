"""Encryption of secrets at rest: the one seam for keys.

Keys come from settings.ENCRYPTION_KEYS (Fernet keys). The first key
encrypts; every key decrypts, so a new key can be put first and the old ones
kept until ``manage.py rotate_keys`` has re-encrypted every stored secret.

Every function that holds a plaintext secret or a key is marked with
``sensitive_variables``, so neither appears in error reports.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

NOT_DECRYPTABLE = "A stored secret cannot be decrypted with the configured ENCRYPTION_KEYS."


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


class EncryptionKeysError(ImproperlyConfigured):
    """ENCRYPTION_KEYS is empty or holds a value that is not a Fernet key."""


@sensitive_variables()
def key_problem(key: object) -> str:
    """Why a value is not a usable Fernet key, in plain words; "" when it is one (never shows the key)."""
    if not isinstance(key, str) or not key:
        return "it is not a non-empty string"
    try:
        Fernet(key.encode())
    except ValueError:
        return "it is not 32 url-safe base64-encoded bytes"
    return ""


@sensitive_variables()
def key_problems(keys: object) -> list[str]:
    """What is wrong with ENCRYPTION_KEYS, one sentence per problem, naming keys by position."""
    if isinstance(keys, str) or not isinstance(keys, (list, tuple)):
        return ["ENCRYPTION_KEYS must be a list of Fernet keys."]
    if not keys:
        return ["ENCRYPTION_KEYS is empty: nothing can be encrypted or decrypted."]
    return [
        f"ENCRYPTION_KEYS[{i}] (key {i + 1} of {len(keys)}) is not a valid Fernet key: {problem}."
        for i, key in enumerate(keys)
        if (problem := key_problem(key))
    ]


@lru_cache(maxsize=8)
@sensitive_variables()
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if problems := key_problems(keys):
        raise EncryptionKeysError(" ".join(problems))
    return MultiFernet([Fernet(key.encode()) for key in keys])


@sensitive_variables()
def fernet() -> MultiFernet:
    keys = settings.ENCRYPTION_KEYS
    return _fernet(tuple(keys) if isinstance(keys, (list, tuple)) else keys)


@sensitive_variables()
def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


@sensitive_variables()
def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(NOT_DECRYPTABLE) from None


@sensitive_variables()
def rotate(token: str) -> str:
    """Re-encrypt a token with the first (current) key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(NOT_DECRYPTABLE) from None
