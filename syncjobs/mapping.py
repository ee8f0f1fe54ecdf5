"""CRM records as canonical values, and back.

A canonical value dict has the synced field names of ``crm.directions.SYNC_FIELDS``
and plain JSON values: text with ``\\n`` line ends and no trailing blanks, times as
UTC ISO strings to the second, dates as ISO dates, attendees as a sorted list of
lower-case addresses. Backends translate the same dicts to and from the mailbox.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from crm.models import ActivityStatus, Appointment, Contact, CrmRecord, Task

TIME_FIELDS = {"start", "end"}
DATE_FIELDS = {"due"}


def text(value: Any) -> str:
    if value is None:
        return ""
    return "\n".join(line.rstrip() for line in str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()


def iso_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # A plain datetime: subclasses (exchangelib's) insist on their own tzinfo types.
    value = datetime.fromtimestamp(value.timestamp(), UTC)
    return value.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat()


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def addresses(values: Any) -> list[str]:
    return sorted({str(a).strip().lower() for a in values or [] if a and str(a).strip()})


def task_status(value: str) -> str:
    """Mailboxes know done and not done: a canceled task reads as open."""
    return ActivityStatus.COMPLETED if value == ActivityStatus.COMPLETED else ActivityStatus.OPEN


def normalize(values: dict[str, Any]) -> dict[str, Any]:
    """Canonical form of a value dict from either side."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == "attendees":
            out[name] = addresses(value)
        elif name in TIME_FIELDS:
            out[name] = iso_time(value) if isinstance(value, datetime) else value or None
        elif name in DATE_FIELDS:
            out[name] = iso_date(value) if isinstance(value, (date, datetime)) else value or None
        elif name == "email":
            out[name] = text(value).lower()
        else:
            out[name] = text(value)
    return out


def crm_values(record: CrmRecord) -> dict[str, Any]:
    if isinstance(record, Contact):
        fields = ("first_name", "last_name", "email", "job_title", "business_phone", "mobile_phone", "description")
        return normalize({f: getattr(record, f) for f in fields})
    if isinstance(record, Appointment):
        fields = ("subject", "start", "end", "location", "description", "attendees")
        return normalize({f: getattr(record, f) for f in fields})
    if isinstance(record, Task):
        values = normalize({f: getattr(record, f) for f in ("subject", "description", "due", "priority")})
        values["status"] = task_status(record.status)
        return values
    raise TypeError(f"{type(record).__name__} does not sync")


def apply_to_record(record: CrmRecord, changes: dict[str, Any]) -> list[str]:
    """Set canonical values on a record; returns the model fields changed."""
    changed = []
    for name, value in changes.items():
        if name in TIME_FIELDS:
            value = parse_time(value)
        elif name in DATE_FIELDS:
            value = parse_date(value)
        elif name == "attendees":
            value = addresses(value)
        elif name == "status" and isinstance(record, Task):
            if task_status(record.status) == value:
                continue  # a canceled task stays canceled while the mailbox says "not done"
        elif value is None:
            value = ""
        field = record._meta.get_field(name)
        if isinstance(value, str) and getattr(field, "max_length", None):
            value = value[: field.max_length]
        if getattr(record, name) != value:
            setattr(record, name, value)
            changed.append(name)
    return changed


def new_record(model: type[CrmRecord], values: dict[str, Any], **fields: Any) -> CrmRecord:
    record = model(**fields)
    if isinstance(record, Contact) and not values.get("last_name"):
        values = {**values, "last_name": values.get("first_name") or values.get("email") or "(no name)"}
    if isinstance(record, (Appointment, Task)) and not values.get("subject"):
        values = {**values, "subject": "(no subject)"}
    if isinstance(record, Appointment):
        values = {**values, "end": values.get("end") or values.get("start")}
    apply_to_record(record, values)
    return record
