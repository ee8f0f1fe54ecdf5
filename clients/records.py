"""CRM records as the client API shows and takes them: the synced fields (crm/directions.py
SYNC_FIELDS) as JSON values."""

from __future__ import annotations

import datetime
from typing import Any

from crm.directions import SYNC_FIELDS


def json_value(value: Any) -> Any:
    """A field value as JSON: times in UTC with a Z, dates as YYYY-MM-DD, the rest as it is."""
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def fields_of(record_type: str, source: Any) -> dict[str, Any]:
    """The synced fields of a record (a model instance or a ``values()`` row)."""
    get = source.get if isinstance(source, dict) else lambda name: getattr(source, name)
    return {name: json_value(get(name)) for name in SYNC_FIELDS[record_type]}
