"""The mail servers of the email tests: Dovecot (POP3, IMAP) and aiosmtpd (SMTP), see servers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mail.servers import Account, Dovecot, MailServers, SmtpServer, running_mail_servers


@pytest.fixture(scope="session")
def mail_servers() -> Iterator[MailServers]:
    """Dovecot and the SMTP server, started once per session on free ports."""
    with running_mail_servers() as servers:
        yield servers


@pytest.fixture
def dovecot(mail_servers: MailServers) -> Dovecot:
    return mail_servers.dovecot


@pytest.fixture
def smtp_server(mail_servers: MailServers) -> SmtpServer:
    return mail_servers.smtp


@pytest.fixture
def mail_account(mail_servers: MailServers) -> Account:
    """An account of this test's own, in Dovecot and on the SMTP server."""
    return mail_servers.account()


@pytest.fixture
def trust_test_ca(mail_servers: MailServers, monkeypatch: pytest.MonkeyPatch) -> None:
    """The portal trusts the servers' throwaway CA, as an administrator would: SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(mail_servers.ca_file))
