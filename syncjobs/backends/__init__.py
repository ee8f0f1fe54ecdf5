"""Backends: the engine's one seam to mailbox servers."""

from __future__ import annotations

from typing import Any

from syncjobs.backends.base import Backend


def backend_for(mailbox: Any) -> Backend:
    """The backend for a mailbox's server profile (EWS for Exchange; Graph can join here)."""
    from syncjobs.backends.ews import EwsBackend

    return EwsBackend(mailbox)
