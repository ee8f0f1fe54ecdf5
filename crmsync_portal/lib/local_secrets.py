"""Development secrets, generated once into a git-ignored file.

With DEBUG on, a checkout must run without any configuration, yet the signing
key and the encryption key must stay the same across restarts (otherwise the
stored passwords could no longer be decrypted). So they are generated on first
use and kept in ``var/local_secrets.json``. With DEBUG off they must come from
the environment.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def load_or_create(path: Path) -> dict[str, str]:
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written with 0600: the file holds the key that decrypts stored passwords.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    return values
