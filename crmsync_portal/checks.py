"""System checks of the portal's own settings (run by ``manage.py check`` and at start)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register

from crmsync_portal.lib import crypto


@register(Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Load every key of ENCRYPTION_KEYS; name the ones that are not Fernet keys (never their value)."""
    return [
        Error(
            problem,
            hint='Generate a key with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"',
            id="crmsync.E001",
        )
        for problem in crypto.key_problems(getattr(settings, "ENCRYPTION_KEYS", None))
    ]
