"""Logging filters for the settings' LOGGING."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied


class RefusalWithoutTraceback(logging.Filter):
    """Keep the one-line "Forbidden (Permission denied): /path" of a refused request, but not
    its traceback: a 403 is the portal working as intended, not an error to debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True
