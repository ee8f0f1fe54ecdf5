"""Connecting to POP3, IMAP and SMTP servers: where, with what TLS, as whom, and errors in words.

TLS (the profile's incoming_tls / outgoing_tls): off is plaintext. On is implicit TLS (the
connection starts with TLS: 993, 995, 465 and any port not named below), or STARTTLS on the
ports where the protocols start in plaintext (25, 587, 110, 143), refused when the server does
not offer it. Certificates are checked against the system's trusted CAs (SSL_CERT_FILE or
SSL_CERT_DIR point at a private CA), host name included; TLS is never quietly dropped.

Credentials: the profile's (a service account) or each mailbox's own, as the profile says.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mailboxes.models import CredentialsSource, Mailbox
from syncjobs.errors import PermanentError, SyncError, TransientError

# Where the protocols start in plaintext: TLS there means STARTTLS (SMTP, submission, POP3, IMAP).
STARTTLS_PORTS = frozenset({25, 587, 110, 143})


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    timeout: float
    username: str
    password: str = field(repr=False)

    @property
    def implicit_tls(self) -> bool:
        return self.tls and self.port not in STARTTLS_PORTS

    @property
    def starttls(self) -> bool:
        return self.tls and self.port in STARTTLS_PORTS

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def credentials(mailbox: Mailbox) -> tuple[str, str]:
    """User name and password: the profile's service account, or the mailbox's own."""
    profile = mailbox.profile
    assert profile is not None
    if profile.credentials_source == CredentialsSource.PROFILE:
        return profile.username, profile.password
    return mailbox.username or mailbox.address, mailbox.password


def incoming_endpoint(mailbox: Mailbox) -> Endpoint:
    profile = mailbox.profile
    assert profile is not None and profile.incoming_port is not None
    username, password = credentials(mailbox)
    return Endpoint(
        profile.incoming_host,
        profile.incoming_port,
        profile.incoming_tls,
        profile.timeout_seconds,
        username,
        password,
    )


def outgoing_endpoint(mailbox: Mailbox) -> Endpoint:
    profile = mailbox.profile
    assert profile is not None and profile.outgoing_port is not None
    username, password = credentials(mailbox)
    return Endpoint(
        profile.outgoing_host,
        profile.outgoing_port,
        profile.outgoing_tls,
        profile.timeout_seconds,
        username,
        password,
    )


def tls_context() -> ssl.SSLContext:
    """Certificates and host names checked against the system's CAs (or SSL_CERT_FILE's)."""
    return ssl.create_default_context()


def words(error: BaseException) -> str:
    """What a server or the network said, as text (servers answer in bytes)."""
    code = getattr(error, "smtp_code", None)
    if code is not None:
        message = getattr(error, "smtp_error", b"")
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        return f"{code} {text}"
    args = [a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in error.args]
    return " ".join(args) or type(error).__name__


def refused_credentials(error: BaseException) -> PermanentError:
    return PermanentError(f"The server refused the credentials: {words(error)}")


def no_starttls(endpoint: Endpoint) -> PermanentError:
    return PermanentError(
        f"TLS is on, and {endpoint} does not offer STARTTLS: use the server's TLS port, or turn TLS off "
        "if the connection may be plaintext."
    )


def network_error(endpoint: Endpoint, error: BaseException) -> SyncError:
    """A connection's failure as the engine's kind of error, in plain words."""
    if isinstance(error, SyncError):
        return error
    if isinstance(error, ssl.SSLCertVerificationError):
        return PermanentError(f"The certificate of {endpoint} is not trusted: {error.verify_message or error}.")
    if isinstance(error, ssl.SSLError):
        return PermanentError(
            f"TLS with {endpoint} failed ({error.reason or error}): the port may not speak TLS. "
            "Use the server's TLS port, or turn TLS off if the connection may be plaintext."
        )
    if isinstance(error, ConnectionRefusedError):
        return TransientError(f"{endpoint} refused the connection: the server is down, or nothing listens there.")
    if isinstance(error, TimeoutError):
        return TransientError(f"{endpoint} did not answer within {endpoint.timeout:g} seconds.")
    if isinstance(error, socket.gaierror):
        return TransientError(f"The server name {endpoint.host} could not be resolved: {error.strerror or error}.")
    if isinstance(error, OSError):
        return TransientError(f"The connection to {endpoint} failed ({type(error).__name__}): {words(error)}")
    return TransientError(f"Unexpected error from {endpoint} ({type(error).__name__}): {words(error)}")


@contextlib.contextmanager
def translated(endpoint: Endpoint, protocol_error: Callable[[Exception], SyncError | None]) -> Iterator[None]:
    """Raise what goes wrong inside as the engine's kind of error (TransientError, PermanentError...).

    ``protocol_error`` reads the protocol's own errors (the server's answers) and returns None
    for the others, which are the network's (``network_error``).
    """
    try:
        yield
    except SyncError:
        raise
    except Exception as error:
        raise (protocol_error(error) or network_error(endpoint, error)) from error


def quietly(close: Callable[[], Any]) -> None:
    """Close a connection that may be broken already: nothing left to report."""
    with contextlib.suppress(Exception):
        close()
