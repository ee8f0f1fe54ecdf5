"""The errors a backend raises, sorted by what the engine does about them (SYNC.md, Errors)."""

from __future__ import annotations


class SyncError(Exception):
    """Base class: ``str(error)`` is the reason in plain words, shown to administrators."""


class TransientError(SyncError):
    """Server busy, timeouts, connection errors, HTTP 5xx: try the run again later."""

    def __init__(self, message: str, back_off: float | None = None) -> None:
        super().__init__(message)
        self.back_off = back_off  # seconds the server asked us to wait, if it said


class PermanentError(SyncError):
    """Bad credentials, access denied, no such mailbox: disable the channel until Test & Enable."""


class InvalidSyncState(SyncError):
    """The mailbox no longer accepts the stored sync state: rebuild the folder state."""


class ItemError(SyncError):
    """One item failed; the others go on."""

    def __init__(self, message: str, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale  # the change key was stale: refetch and decide again
