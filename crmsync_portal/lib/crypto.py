"""Encryption of secrets at rest: the one seam for keys.

Keys come from settings.ENCRYPTION_KEYS (Fernet keys). The first key
encrypts; every key decrypts, so a new key can be put first and the old ones
kept until ``manage.py rotate_keys`` has re-encrypted every stored secret.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("A stored secret cannot be decrypted with the configured ENCRYPTION_KEYS.") from None


def rotate(token: str) -> str:
    """Re-encrypt a token with the first (current) key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("A stored secret cannot be decrypted with the configured ENCRYPTION_KEYS.") from None
