"""Backends: the engine's one seam to mailbox servers."""

from __future__ import annotations

from typing import Any

from crmsync_portal.lib.crypto import DecryptionError
from syncjobs.backends.base import Backend
from syncjobs.errors import PermanentError


def backend_for(mailbox: Any) -> Backend:
    """The backend for a mailbox's server profile (EWS for Exchange; Graph can join here)."""
    from syncjobs.backends.ews import EwsBackend

    try:
        return EwsBackend(mailbox)
    except DecryptionError as error:
        raise PermanentError(f"{error} Enter the password again on the server profile or the mailbox.") from error
