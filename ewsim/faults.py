"""EWS errors raised by operations, and the fault-injection registry of the control interface."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


class EwsError(Exception):
    """An EWS ResponseCode error for one response message (or the whole request when raised early)."""

    def __init__(self, code: str, text: str = "", values: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text or code
        self.values = values or {}


class SoapFault(EwsError):
    """An error answered as a SOAP Fault for the whole request (schema, impersonation, throttling)."""


def item_not_found() -> EwsError:
    return EwsError("ErrorItemNotFound", "The specified object was not found in the store.")


def folder_not_found() -> EwsError:
    return EwsError("ErrorFolderNotFound", "The specified folder could not be found in the store.")


def malformed_id() -> EwsError:
    return EwsError("ErrorInvalidIdMalformed", "Id is malformed.")


def access_denied() -> EwsError:
    return EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")


@dataclass
class FaultRule:
    """The next `count` requests for `operation` (and `mailbox`, if set) fail in the given way."""

    operation: str
    count: int
    mailbox: str | None = None
    error: str | None = None
    back_off_ms: int | None = None
    http_status: int | None = None
    delay_ms: int | None = None

    def matches(self, operation: str, mailbox: str | None) -> bool:
        if self.operation not in ("*", operation):
            return False
        return self.mailbox is None or (mailbox or "").lower() == self.mailbox.lower()

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FaultInjector:
    rules: list[FaultRule] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: FaultRule) -> None:
        with self.lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def take(self, operation: str, mailbox: str | None) -> FaultRule | None:
        """Consume one use of the first matching rule, if any."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(operation, mailbox):
                    rule.count -= 1
                    if rule.count <= 0:
                        self.rules.remove(rule)
                    return rule
        return None

    def listing(self) -> list[dict[str, object]]:
        with self.lock:
            return [r.as_dict() for r in self.rules]


def parse_rule(data: object) -> FaultRule:
    """Validate a control-interface fault spec; raises ValueError with a readable reason."""
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    operation = data.get("operation")
    if not isinstance(operation, str) or not operation:
        raise ValueError("'operation' (an EWS operation name or '*') is required")
    count = data.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise ValueError("'count' must be a positive integer")
    kinds = [k for k in ("error", "http_status", "delay_ms") if data.get(k) is not None]
    if len(kinds) != 1:
        raise ValueError("exactly one of 'error', 'http_status', 'delay_ms' is required")
    rule = FaultRule(operation=operation, count=count, mailbox=data.get("mailbox"))
    if "error" in kinds:
        if not isinstance(data["error"], str) or not data["error"].startswith("Error"):
            raise ValueError("'error' must be an EWS response code such as 'ErrorServerBusy'")
        rule.error = data["error"]
        back_off = data.get("back_off_ms")
        if back_off is not None and (not isinstance(back_off, int) or back_off < 0):
            raise ValueError("'back_off_ms' must be a non-negative integer")
        rule.back_off_ms = back_off
    elif "http_status" in kinds:
        status = data["http_status"]
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("'http_status' must be an integer in 400..599")
        rule.http_status = status
    else:
        delay = data["delay_ms"]
        if not isinstance(delay, int) or not 0 <= delay <= 600_000:
            raise ValueError("'delay_ms' must be an integer in 0..600000")
        rule.delay_ms = delay
    return rule
