"""Real mail servers for the tests: Dovecot (POP3 and IMAP) and aiosmtpd (SMTP).

Each starts once per test session on free high ports picked at run time, so that two test runs
on one machine do not collide, with a throwaway configuration in a temporary folder
(/work/shared/REFERENCES.md, "Dovecot"). Both speak plaintext (STARTTLS offered) on one port and
implicit TLS on another, with a certificate of a throwaway CA (``trustme``); ``trusting(ca)``
makes the portal's TLS connections trust that CA the way an administrator would: SSL_CERT_FILE.

Every test gets accounts of its own (``MailServers.account()``): a user in Dovecot's passwd-file,
known to the SMTP server too, so no test sees another's messages.
"""

from __future__ import annotations

import contextlib
import imaplib
import itertools
import logging
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
START_TRIES = 3
READY_SECONDS = 30.0
REFUSED_DOMAIN = "refused.example"  # the SMTP server refuses these recipients (550)
LATER_DOMAIN = "later.example"  # and these for now (451)
DROP_DOMAIN = "drop.example"  # the SMTP server takes messages to these, then the connection breaks
DEBIAN_PACKAGES = "dovecot-pop3d dovecot-imapd"
_serial = itertools.count(1)


def free_port() -> int:
    """A TCP port free right now (the kernel's pick); a server that loses it to a race is restarted."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.02)


def greeting(port: int, tls: bool = False) -> bytes:
    """What a server says first on the port (b"" when nothing answers)."""
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=2) as connection:
        if tls:  # a readiness probe only: the tests check certificates through the portal's code
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            with context.wrap_socket(connection) as secure:
                return _line(secure)
        return _line(connection)
    return b""


def _line(connection: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < 4096 and (chunk := connection.recv(4096)):
        data += chunk
    return data


@dataclass(frozen=True)
class Account:
    address: str
    password: str


class Dovecot:
    """A Dovecot of our own: ``dovecot -F -c FILE``, mail in Maildirs owned by the ``mail`` user."""

    def __init__(self, root: Path, cert: trustme.LeafCert) -> None:
        self.root = root
        self.config = root / "dovecot.conf"
        self.users = root / "users"
        self.log = root / "dovecot.log"
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen[bytes] | None = None
        cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
        cert.private_key_pem.write_to_path(str(root / "key.pem"))
        self.users.mkdir()
        mail = root / "mail"
        mail.mkdir()
        shutil.chown(mail, "mail", "mail")

    @property
    def imap_port(self) -> int:
        return self.ports["imap"]

    @property
    def imaps_port(self) -> int:
        return self.ports["imaps"]

    @property
    def pop3_port(self) -> int:
        return self.ports["pop3"]

    @property
    def pop3s_port(self) -> int:
        return self.ports["pop3s"]

    def start(self) -> None:
        if not shutil.which("dovecot"):
            raise RuntimeError(f"Dovecot is not installed: apt-get install -y {DEBIAN_PACKAGES} (./portal test does)")
        for attempt in range(1, START_TRIES + 1):
            self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
            self.config.write_text(self._config())
            self.process = subprocess.Popen(["dovecot", "-F", "-c", str(self.config)], stderr=subprocess.PIPE)
            try:
                wait_until(self._ready, READY_SECONDS, "Dovecot listening")
                return
            except TimeoutError:
                self.stop()
                if attempt == START_TRIES:
                    raise RuntimeError(f"Dovecot did not start:\n{self._log_tail()}") from None

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise TimeoutError("Dovecot exited")  # a port taken meanwhile: try other ports
        return all(self.banner.encode() in greeting(port, tls=name.endswith("s")) for name, port in self.ports.items())

    @property
    def banner(self) -> str:
        """This Dovecot's greeting: on a port it wanted, another test run's server says otherwise."""
        return f"Test Dovecot {self.root.name} ready."

    def _log_tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        if self.process is not None and self.process.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                text += self.process.stderr.read().decode(errors="replace")
        return text[-3000:]

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def _config(self) -> str:
        root, ports = self.root, self.ports
        dh = "ssl_dh = </usr/share/dovecot/dh.pem" if Path("/usr/share/dovecot/dh.pem").exists() else ""
        return f"""
protocols = imap pop3
listen = {HOST}
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log}
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
{dh}
disable_plaintext_auth = no
auth_failure_delay = 0
login_greeting = {self.banner}
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users}/%u
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = {ports["pop3s"]}
    ssl = yes
  }}
}}
"""

    def add_user(self, account: Account) -> None:
        """A passwd-file per user, renamed into place whole: Dovecot rereads a changed file at most
        once a second, so it must never see one half written."""
        path = self.users / account.address
        partial = path.with_name(f".{path.name}.new")
        partial.write_text(f"{account.address}:{{PLAIN}}{account.password}\n")
        partial.replace(path)

    def can_log_in(self, account: Account) -> bool:
        try:
            with self.imap(account):
                return True
        except imaplib.IMAP4.error:
            return False

    @contextlib.contextmanager
    def imap(self, account: Account) -> Iterator[imaplib.IMAP4]:
        """An IMAP session of the account's own, for delivering and looking."""
        client = imaplib.IMAP4(HOST, self.imap_port, timeout=30)
        try:
            client.login(account.address, account.password)
            yield client
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()

    def deliver(self, account: Account, raw: bytes, folder: str = "INBOX", flags: str = "") -> int:
        """Put a message into the account's folder (created when missing); returns its UID."""
        with self.imap(account) as client:
            if folder != "INBOX":
                client.create(_quoted(folder))  # "already exists" is fine
            typ, data = client.append(_quoted(folder), f"({flags})" if flags else None, None, raw)
            assert typ == "OK", data
            # [APPENDUID <uidvalidity> <uid>]: Dovecot answers with UIDPLUS.
            return int(data[0].split(b"]")[0].split()[-1])

    def flags(self, account: Account, folder: str = "INBOX") -> dict[int, set[str]]:
        """Each message's UID and flags."""
        with self.imap(account) as client:
            client.select(_quoted(folder), readonly=True)
            typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
            found: dict[int, set[str]] = {}
            for line in data:
                if isinstance(line, bytes) and b"UID" in line:
                    text = line.decode()
                    uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                    found[uid] = set(text.split("FLAGS (")[1].split(")")[0].split())
            return found

    def set_uidvalidity(self, account: Account, value: int, folder: str = "INBOX") -> None:
        """What a server does when it rebuilds a folder: a new UIDVALIDITY (and UIDs from 1 again)."""
        subprocess.run(
            ["doveadm", "-c", str(self.config), "mailbox", "update", "-u", account.address]
            + ["--uid-validity", str(value), folder],
            check=True,
            capture_output=True,
        )


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Session(Session):
    login_data: Any = None  # aiosmtpd 1.4 sets this deprecated property (with a warning) on every AUTH


class _SMTP(SMTP):
    def _create_session(self) -> Session:
        return _Session(self.loop)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Received:
    """One message the SMTP server accepted."""

    login: str
    tls: bool
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class SmtpServer:
    """aiosmtpd on two ports: plaintext with STARTTLS offered, and implicit TLS. AUTH required."""

    cert: trustme.LeafCert
    users: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    tls_port: int = 0
    _controllers: list[Controller] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs each connection
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        # AUTH allowed without TLS: the tests check the profile's TLS setting, not the server's
        # policy (aiosmtpd counts only STARTTLS as TLS). handle_MAIL insists on AUTH.
        common: dict[str, Any] = {"authenticator": self._authenticate, "auth_require_tls": False}
        for attempt in range(1, START_TRIES + 1):
            self.port, self.tls_port = free_port(), free_port()
            plain = _Controller(self, hostname=HOST, port=self.port, tls_context=context, **common)
            implicit = _Controller(self, hostname=HOST, port=self.tls_port, ssl_context=context, **common)
            try:
                plain.start()
                self._controllers.append(plain)
                implicit.start()
                self._controllers.append(implicit)
                return
            except (OSError, RuntimeError):  # a port taken meanwhile: try others
                self.stop()
                if attempt == START_TRIES:
                    raise

    def stop(self) -> None:
        while self._controllers:
            self._controllers.pop().stop()

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2]
        if domain == REFUSED_DOMAIN:
            return "550 5.1.1 No such user here"
        if domain == LATER_DOMAIN:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.received.append(
                Received(
                    login=str(session.auth_data),
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=bytes(envelope.original_content or b""),
                )
            )
        if any(address.endswith(f"@{DROP_DOMAIN}") for address in envelope.rcpt_tos):
            server.transport.close()  # took the message, and the connection broke before the answer
        return "250 Message accepted for delivery"

    def messages_for(self, account: Account) -> list[Received]:
        with self._lock:
            return [message for message in self.received if message.login == account.address]


class MailServers:
    """Dovecot, the SMTP server and their CA, for one test session."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert(HOST, "localhost")
        # Not pytest's tmp_path: the mail user must be able to reach its Maildirs.
        self.root = Path(tempfile.mkdtemp(prefix="crmsync-mail-"))
        self.root.chmod(0o755)
        self.ca_file = self.root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.dovecot = Dovecot(self.root, cert)
        self.smtp = SmtpServer(cert)

    def start(self) -> None:
        try:
            self.dovecot.start()
            self.smtp.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.smtp.stop()
        self.dovecot.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def account(self, name: str = "user") -> Account:
        """A fresh account, known to Dovecot and to the SMTP server; returned once Dovecot lets it log in."""
        account = Account(f"{name}{next(_serial)}-{os.getpid()}@example.com", f"pw-{next(_serial)}")
        self.dovecot.add_user(account)
        self.smtp.users[account.address] = account.password
        wait_until(lambda: self.dovecot.can_log_in(account), READY_SECONDS, f"Dovecot accepting {account.address}")
        return account


@contextlib.contextmanager
def running_mail_servers() -> Iterator[MailServers]:
    servers = MailServers()
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


def mail_profile(org: Any, servers: MailServers, kind: str, *, tls: bool = False, **fields: Any) -> Any:
    """A POP3/SMTP or IMAP/SMTP profile pointing at the test servers; each mailbox logs in as itself.

    ``tls``: the TLS ports (implicit TLS) and the test CA; otherwise the plaintext ports.
    """
    from mailboxes.models import CredentialsSource, EmailServerProfile, ProfileKind

    dovecot, smtp = servers.dovecot, servers.smtp
    if kind == ProfileKind.IMAP_SMTP:
        incoming = dovecot.imaps_port if tls else dovecot.imap_port
    else:
        incoming = dovecot.pop3s_port if tls else dovecot.pop3_port
    values = {
        "name": f"{ProfileKind(kind).label}{' TLS' if tls else ''}",
        "kind": kind,
        "credentials_source": CredentialsSource.MAILBOX,
        "username": "",
        "incoming_host": HOST,
        "incoming_port": incoming,
        "incoming_tls": tls,
        "outgoing_host": HOST,
        "outgoing_port": smtp.tls_port if tls else smtp.port,
        "outgoing_tls": tls,
        "timeout_seconds": 10,
        **fields,
    }
    return EmailServerProfile.objects.create(organization=org, **values)


def mail_mailbox(org: Any, user: Any, account: Account, profile: Any, **fields: Any) -> Any:
    """An approved mailbox of ``user`` at ``account``, with the account's own credentials."""
    from mailboxes.models import Mailbox

    mailbox = Mailbox(
        organization=org,
        user=user,
        address=account.address,
        profile=profile,
        username=account.address,
        password=account.password,
        **{"act_method": "none", **fields},
    )
    mailbox.prepare_approval()
    mailbox.save()
    Mailbox.objects.filter(pk=mailbox.pk).update(approval_status="approved")
    mailbox.refresh_from_db()
    return mailbox
