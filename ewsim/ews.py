"""The EWS endpoint: authentication, impersonation, fault injection and operation dispatch.

Independent of HTTP plumbing: `Simulator.handle_ews()` takes headers and a body and returns a
status, extra headers and a body, so it is easy to reason about (and to test) on its own.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from lxml import etree

from .faults import EwsError, FaultInjector, FaultRule, SoapFault
from .model import Mailbox
from .operations import OPERATIONS, Context
from .soap import (
    M,
    SoapParseError,
    child,
    child_text,
    children,
    fault_envelope,
    local,
    parse_envelope,
    response_envelope,
)
from .store import Store

log = logging.getLogger("ewsim")

XML_TYPE = "text/xml; charset=utf-8"
IIS_500 = b"<html><body><h1>Server Error in '/EWS' Application.</h1></body></html>"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    operation: str | None = None
    mailbox: str | None = None
    response_code: str | None = None
    user: str | None = None


class Simulator:
    """Everything behind the HTTP server: the store, the request log and injected faults."""

    def __init__(self, store: Store, max_body: int = 10 * 1024 * 1024, log_size: int = 10_000) -> None:
        self.store = store
        self.max_body = max_body
        self.faults = FaultInjector()
        self.requests: deque[dict[str, object]] = deque(maxlen=log_size)
        self.log_lock = threading.Lock()

    # ---- request log ------------------------------------------------------------------------
    def record(self, reply: Reply, wall_time: float, elapsed_ms: float) -> None:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall_time)),
            "operation": reply.operation,
            "mailbox": reply.mailbox,
            "user": reply.user,
            "http_status": reply.status,
            "response_code": reply.response_code,
            "duration_ms": round(elapsed_ms, 1),
        }
        with self.log_lock:
            self.requests.append(entry)

    def request_log(self) -> list[dict[str, object]]:
        with self.log_lock:
            return list(self.requests)

    def clear_log(self) -> None:
        with self.log_lock:
            self.requests.clear()

    # ---- auth -------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Mailbox | None:
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        # Accept DOMAIN\user and UPNs alike: the part after a backslash is the mailbox address.
        mailbox = self.store.mailbox(user.split("\\")[-1])
        if mailbox is None or not hmac.compare_digest(mailbox.password.encode(), password.encode()):
            return None
        return mailbox

    def acting_mailbox(self, user: Mailbox, header: etree._Element | None) -> Mailbox:
        """The mailbox a request works on: the caller's own, or the one named in ExchangeImpersonation."""
        impersonation = child(header, "ExchangeImpersonation")
        if impersonation is None:
            return user
        sid = child(impersonation, "ConnectingSID")
        target = next(
            (
                c.text or ""
                for c in children(sid)
                if local(c.tag) in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName")
            ),
            "",
        ).strip()
        if not user.can_impersonate:
            raise SoapFault(
                "ErrorImpersonateUserDenied", "The account does not have permission to impersonate the requested user."
            )
        mailbox = self.store.mailbox(target)
        if mailbox is None:
            raise SoapFault("ErrorNonExistentMailbox", f"The SMTP address {target} has no mailbox associated with it.")
        return mailbox

    # ---- dispatch ---------------------------------------------------------------------------
    def handle_ews(self, authorization: str | None, body: bytes) -> Reply:
        user = self.authenticate(authorization)
        if user is None:
            return Reply(
                401,
                b"401 - Unauthorized: Access is denied due to invalid credentials.",
                {"WWW-Authenticate": 'Basic realm="ewsim"', "Content-Type": "text/plain"},
            )
        try:
            header, op = parse_envelope(body)
        except SoapParseError as exc:
            return self._fault(SoapFault("ErrorSchemaValidation", f"The request failed schema validation: {exc}"))
        operation = local(op.tag)
        reply = self._dispatch(user, header, op, operation)
        reply.operation = reply.operation or operation
        reply.user = user.address
        return reply

    def _dispatch(self, user: Mailbox, header: etree._Element | None, op: etree._Element, operation: str) -> Reply:
        mailbox = user.address
        try:
            if op.tag != f"{{{M}}}{operation}":
                raise SoapFault("ErrorSchemaValidation", f"The request failed schema validation: {op.tag!r}.")
            if operation not in OPERATIONS:
                # Not ErrorInvalidRequest: clients read that as a wrong API version and retry under every version.
                raise SoapFault("ErrorInvalidOperation", f"ewsim does not support the EWS operation {operation}.")
            with self.store.lock:
                acting = self.acting_mailbox(user, header)
            mailbox = acting.address
            injected = self.faults.take(operation, mailbox)
            if injected is not None:
                early = self._inject(injected)
                if early is not None:
                    early.mailbox = mailbox
                    return early
            with self.store.lock:
                messages = OPERATIONS[operation](Context(self.store, user, acting), op)
                self.store.commit()
        except EwsError as exc:
            reply = self._fault(exc)
            reply.mailbox = mailbox
            return reply
        except Exception:  # a bug must cost one request, never the server
            log.exception("Internal error in %s", operation)
            reply = self._fault(SoapFault("ErrorInternalServerError", "An internal server error occurred."))
            reply.mailbox = mailbox
            return reply
        code = next((c for m in messages if (c := child_text(m, "ResponseCode")) != "NoError"), "NoError")
        return Reply(200, response_envelope(operation, messages), {"Content-Type": XML_TYPE}, operation, mailbox, code)

    def _inject(self, rule: FaultRule) -> Reply | None:
        if rule.delay_ms is not None:
            # A slow server, not test synchronisation: the request is answered normally afterwards.
            time.sleep(rule.delay_ms / 1000)
            return None
        if rule.http_status is not None:
            body = IIS_500 if rule.http_status == 500 else f"HTTP {rule.http_status}".encode()
            return Reply(rule.http_status, body, {"Content-Type": "text/html"}, response_code=None)
        values = (
            {"BackOffMilliseconds": str(rule.back_off_ms if rule.back_off_ms is not None else 5000)}
            if rule.error == "ErrorServerBusy"
            else None
        )
        return self._fault(
            SoapFault(
                rule.error or "ErrorInternalServerError",
                "The server cannot service this request right now. Try again later."
                if rule.error == "ErrorServerBusy"
                else f"Injected {rule.error}",
                values,
            )
        )

    @staticmethod
    def _fault(exc: EwsError) -> Reply:
        # Exchange answers SOAP faults with HTTP 500 and an XML body.
        return Reply(
            500, fault_envelope(exc.code, exc.text, exc.values), {"Content-Type": XML_TYPE}, response_code=exc.code
        )
