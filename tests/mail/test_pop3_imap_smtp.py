"""POP3/SMTP and IMAP/SMTP profiles against real servers: Dovecot (from Debian) and aiosmtpd.

Each test has an account of its own on servers shared by the session (tests/mail/servers.py).
"""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import pytest

from crm.models import Account as CrmAccount
from crm.models import Contact, Email, EmailDirection, EmailReceipt, EmailStatus, TrackedBy, TrackedFolder
from mailboxes.models import Channel, Mailbox, ProfileKind, TestStatus, TrackingRule
from syncjobs.engine import run_sync
from syncjobs.errors import ItemError, PermanentError, TransientError
from syncjobs.jobs import enqueue_sync, enqueue_test
from syncjobs.mail import connection
from syncjobs.mail.connection import Endpoint
from syncjobs.mail.imap import IMAPTransport
from syncjobs.mail.pop3 import POP3Transport
from syncjobs.mail.smtp import MaybeSent, SMTPTransport
from syncjobs.mail.transport import CRM_ID_HEADER
from syncjobs.models import RunStatus, SyncRun, Trigger
from syncjobs.testenable import run_test
from tests.mail.servers import (
    DROP_DOMAIN,
    HOST,
    LATER_DOMAIN,
    REFUSED_DOMAIN,
    Account,
    MailServers,
    free_port,
    mail_mailbox,
    mail_profile,
)

POP3_SMTP, IMAP_SMTP = ProfileKind.POP3_SMTP, ProfileKind.IMAP_SMTP


def raw(subject: str = "Hello", body: str = "Hi there", message_id: str = "") -> bytes:
    message_id = message_id or f"<{subject.replace(' ', '.')}@customer.example>"
    return (
        "From: Ann Lee <ann@customer.example>\r\n"
        "To: someone@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


def subjects(batch: Any) -> list[str]:
    return [BytesParser(policy=default_policy).parsebytes(m.raw)["Subject"] for m in batch.messages]


def endpoint(account: Account, port: int, tls: bool = False, password: str | None = None) -> Endpoint:
    return Endpoint(HOST, port, tls, 10, account.address, account.password if password is None else password)


def outgoing(to: str = "bob@partner.example", subject: str = "Offer CRM:1001", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.com>"
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Our offer, as agreed. Grüße")
    return message


@pytest.fixture
def pop3(dovecot: Any, mail_account: Account) -> Any:
    transport = POP3Transport(endpoint(mail_account, dovecot.pop3_port))
    yield transport
    transport.close()


@pytest.fixture
def imap(dovecot: Any, mail_account: Account) -> Any:
    transport = IMAPTransport(endpoint(mail_account, dovecot.imap_port))
    yield transport
    transport.close()


@pytest.fixture
def smtp(mail_servers: MailServers, mail_account: Account) -> Any:
    transport = SMTPTransport(endpoint(mail_account, mail_servers.smtp.port))
    yield transport
    transport.close()


@pytest.fixture
def imap_smtp(mail_servers: MailServers, mail_account: Account) -> Any:
    """SMTP keeping copies in the account's IMAP Sent folder (an IMAP/SMTP profile)."""
    sent_copy = IMAPTransport(endpoint(mail_account, mail_servers.dovecot.imap_port))
    transport = SMTPTransport(endpoint(mail_account, mail_servers.smtp.port), sent_copy)
    yield transport
    transport.close()


# POP3


def test_pop3_fetches_each_new_message_once(pop3: POP3Transport, dovecot: Any, mail_account: Account) -> None:
    long_line = "x" * 5000  # poplib alone refuses lines over 2,048 bytes
    dovecot.deliver(mail_account, raw("First", body=long_line))
    dovecot.deliver(mail_account, raw("Second"))

    first = pop3.fetch("inbox", "", 10)

    assert subjects(first) == ["First", "Second"]
    assert first.messages[0].raw == raw("First", body=long_line)
    assert first.more is False
    assert all(m.folder == "inbox" and m.source_id for m in first.messages)
    assert pop3.fetch("inbox", first.state, 10).messages == []
    pop3.close()  # the run ends; a POP3 session sees the mailbox as it was when it began

    dovecot.deliver(mail_account, raw("Third"))
    third = pop3.fetch("inbox", first.state, 10)
    assert subjects(third) == ["Third"]
    assert pop3.fetch("inbox", third.state, 10).messages == []


def test_pop3_fetches_at_most_the_limit_and_says_there_is_more(
    pop3: POP3Transport, dovecot: Any, mail_account: Account
) -> None:
    for subject in ("One", "Two", "Three"):
        dovecot.deliver(mail_account, raw(subject))

    batch = pop3.fetch("inbox", "", 2)
    rest = pop3.fetch("inbox", batch.state, 2)

    assert (subjects(batch), batch.more) == (["One", "Two"], True)
    assert (subjects(rest), rest.more) == (["Three"], False)


def test_pop3_delete_removes_by_uidl_and_the_state_keeps_only_what_is_on_the_server(
    pop3: POP3Transport, dovecot: Any, mail_account: Account
) -> None:
    dovecot.deliver(mail_account, raw("Keep"))
    dovecot.deliver(mail_account, raw("Drop"))
    batch = pop3.fetch("inbox", "", 10)
    keep, drop = (m.source_id for m in batch.messages)

    pop3.delete("inbox", [drop, "no-such-uidl"])

    assert len(dovecot.flags(mail_account)) == 1
    after = pop3.fetch("inbox", batch.state, 10)
    assert after.messages == []
    assert json.loads(after.state) == [keep]  # bounded: the deleted message's UIDL is gone


def test_pop3_messages_over_the_size_limit_come_with_their_header_only(
    pop3: POP3Transport, dovecot: Any, mail_account: Account, settings: Any
) -> None:
    settings.EMAIL_MAX_BYTES = 1000
    dovecot.deliver(mail_account, raw("Small"))
    dovecot.deliver(mail_account, raw("Big", body="x" * 2000))

    small, big = pop3.fetch("inbox", "", 10).messages

    assert small.raw == raw("Small") and small.size == len(raw("Small"))
    assert big.size == len(raw("Big", body="x" * 2000))
    assert big.raw == raw("Big").split(b"\r\n\r\n")[0] + b"\r\n\r\n"  # the header, for the record
    assert big.received_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # POP3 has only the headers to tell


def test_pop3_received_at_is_the_newest_received_header(
    pop3: POP3Transport, dovecot: Any, mail_account: Account
) -> None:
    hops = (
        b"Received: from mx.example.com by mail.example.com; Tue, 3 Mar 2026 09:30:00 +0100\r\n"
        b"Received: from customer.example by mx.example.com; Tue, 3 Mar 2026 09:29:00 +0100\r\n"
    )
    dovecot.deliver(mail_account, hops + raw("Relayed"))

    [message] = pop3.fetch("inbox", "", 10).messages

    assert message.received_at == datetime(2026, 3, 3, 8, 30, tzinfo=UTC)


def test_pop3_has_the_inbox_only(pop3: POP3Transport) -> None:
    with pytest.raises(PermanentError, match="POP3 reaches the inbox only"):
        pop3.fetch("Projects", "", 10)


def test_pop3_unreadable_state_starts_over(pop3: POP3Transport, dovecot: Any, mail_account: Account) -> None:
    dovecot.deliver(mail_account, raw("Again"))

    assert subjects(pop3.fetch("inbox", "not json", 10)) == ["Again"]


# IMAP


def test_imap_fetches_above_the_uid_high_water_mark(imap: IMAPTransport, dovecot: Any, mail_account: Account) -> None:
    dovecot.deliver(mail_account, raw("First"))
    dovecot.deliver(mail_account, raw("Second"))

    first = imap.fetch("inbox", "", 10)

    validity = first.state.split(":")[0]
    assert subjects(first) == ["First", "Second"]
    assert first.state == f"{validity}:2"
    assert [m.source_id for m in first.messages] == [f"{validity}:1", f"{validity}:2"]
    assert first.messages[0].raw == raw("First")
    assert first.messages[0].received_at is not None
    assert imap.fetch("inbox", first.state, 10).messages == []

    dovecot.deliver(mail_account, raw("Third"))
    third = imap.fetch("inbox", first.state, 10)
    assert (subjects(third), third.state) == (["Third"], f"{validity}:3")


def test_imap_fetches_at_most_the_limit_and_says_there_is_more(
    imap: IMAPTransport, dovecot: Any, mail_account: Account
) -> None:
    for subject in ("One", "Two", "Three"):
        dovecot.deliver(mail_account, raw(subject))

    batch = imap.fetch("inbox", "", 2)
    rest = imap.fetch("inbox", batch.state, 2)

    assert (subjects(batch), batch.more) == (["One", "Two"], True)
    assert (subjects(rest), rest.more) == (["Three"], False)


def test_imap_reading_leaves_messages_unread_and_keywords_are_categories(
    imap: IMAPTransport, dovecot: Any, mail_account: Account
) -> None:
    uid = dovecot.deliver(mail_account, raw("Tagged"), flags="tracked $label1")

    batch = imap.fetch("inbox", "", 10)

    assert set(batch.messages[0].categories) == {"tracked", "$label1"}
    assert "\\Seen" not in dovecot.flags(mail_account)[uid]


def test_a_new_uidvalidity_fetches_the_folder_again(imap: IMAPTransport, dovecot: Any, mail_account: Account) -> None:
    dovecot.deliver(mail_account, raw("Old"))
    before = imap.fetch("inbox", "", 10)
    imap.close()  # the server rebuilds the folder between two runs

    dovecot.set_uidvalidity(mail_account, 4242)
    after = imap.fetch("inbox", before.state, 10)

    assert subjects(after) == ["Old"]
    assert after.state == "4242:1"
    assert after.messages[0].source_id == "4242:1"


def test_imap_messages_over_the_size_limit_come_with_their_header_only(
    imap: IMAPTransport, dovecot: Any, mail_account: Account, settings: Any
) -> None:
    settings.EMAIL_MAX_BYTES = 1000
    dovecot.deliver(mail_account, raw("Small"))
    dovecot.deliver(mail_account, raw("Big", body="x" * 2000))

    small, big = imap.fetch("inbox", "", 10).messages

    assert small.raw == raw("Small") and small.size == len(raw("Small"))
    assert big.size == len(raw("Big", body="x" * 2000))
    assert big.raw == raw("Big").split(b"\r\n\r\n")[0] + b"\r\n\r\n"


def test_imap_fetches_a_named_folder(imap: IMAPTransport, dovecot: Any, mail_account: Account) -> None:
    dovecot.deliver(mail_account, raw("In the inbox"))
    dovecot.deliver(mail_account, raw("About Acme"), folder="Projects/Acme")
    dovecot.deliver(mail_account, raw("From Ærø"), folder="Kunder/&AMY-r&APg- &- Co")  # modified UTF-7

    acme = imap.fetch("Projects/Acme", "", 10)
    aero = imap.fetch("Kunder/Ærø & Co", "", 10)

    assert subjects(acme) == ["About Acme"]
    assert acme.messages[0].folder == "Projects/Acme"
    assert subjects(aero) == ["From Ærø"]
    with pytest.raises(PermanentError, match="“Nowhere” does not exist"):
        imap.fetch("Nowhere", "", 10)


def test_imap_delete_expunges_only_the_messages_named(imap: IMAPTransport, dovecot: Any, mail_account: Account) -> None:
    for subject in ("Keep", "Drop", "Also kept"):
        dovecot.deliver(mail_account, raw(subject))
    batch = imap.fetch("inbox", "", 10)
    keep, drop, kept = (m.source_id for m in batch.messages)
    other_validity = "1:" + keep.split(":")[1]

    imap.delete("inbox", [drop, other_validity])

    assert sorted(dovecot.flags(mail_account)) == [1, 3]
    assert subjects(imap.fetch("inbox", "", 10)) == ["Keep", "Also kept"]


# SMTP


def test_smtp_sends_with_the_crm_id_as_the_mailbox(
    smtp: SMTPTransport, smtp_server: Any, mail_account: Account
) -> None:
    message = outgoing(Cc="carol@partner.example", Bcc="boss@example.com")

    smtp.send(message, "crm-42")

    [received] = smtp_server.messages_for(mail_account)
    assert received.mail_from == "alice@example.com"
    assert received.rcpt_tos == ["bob@partner.example", "carol@partner.example", "boss@example.com"]
    delivered = BytesParser(policy=default_policy).parsebytes(received.content)
    assert delivered[CRM_ID_HEADER] == "crm-42"
    assert delivered["Bcc"] is None
    assert delivered["Message-ID"]
    assert "Grüße" in delivered.get_content()
    assert smtp.was_sent("crm-42", delivered["Message-ID"]) is None  # plain SMTP cannot tell


def test_smtp_sends_several_messages_over_one_connection(
    smtp: SMTPTransport, smtp_server: Any, mail_account: Account
) -> None:
    smtp.send(outgoing(subject="One"), "1")
    smtp.send(outgoing(subject="Two"), "2")

    assert len(smtp_server.messages_for(mail_account)) == 2


def test_a_refused_recipient_fails_the_message_and_sends_it_to_no_one(
    smtp: SMTPTransport, smtp_server: Any, mail_account: Account
) -> None:
    message = outgoing(to=f"ghost@{REFUSED_DOMAIN}", Cc="bob@partner.example")

    with pytest.raises(ItemError, match=r"refused the recipients: ghost@refused.example \(550 5.1.1"):
        smtp.send(message, "1")
    with pytest.raises(TransientError, match="for now"):
        smtp.send(outgoing(to=f"busy@{LATER_DOMAIN}"), "2")

    smtp.send(outgoing(), "3")  # the connection goes on
    assert [r.rcpt_tos for r in smtp_server.messages_for(mail_account)] == [["bob@partner.example"]]


def test_imap_smtp_keeps_a_copy_in_sent_and_was_sent_finds_it(
    imap_smtp: SMTPTransport, smtp_server: Any, dovecot: Any, mail_account: Account
) -> None:
    message = outgoing()

    imap_smtp.send(message, "12")

    assert len(smtp_server.messages_for(mail_account)) == 1
    assert dovecot.flags(mail_account, "Sent") == {1: {"\\Seen"}}  # created, \Sent; the copy not a draft
    assert imap_smtp.was_sent("12", message["Message-ID"]) is True
    assert imap_smtp.was_sent("1", "") is False  # SEARCH HEADER matches substrings: not trusted alone
    assert imap_smtp.was_sent("123", "") is False


def test_imap_smtp_a_copy_still_marked_sending_means_it_may_have_been_sent(
    imap_smtp: SMTPTransport, mail_account: Account
) -> None:
    # What a crash after storing the copy, before the SMTP server answered, leaves behind.
    sent = imap_smtp.sent_copy
    assert sent is not None
    sent.append(sent.sent_folder(), outgoing(**{CRM_ID_HEADER: "77"}).as_bytes(), r"\Seen \Draft")

    assert imap_smtp.was_sent("77", "") is None


def test_a_connection_lost_while_the_server_takes_the_message_may_have_sent_it(
    imap_smtp: SMTPTransport, smtp_server: Any, mail_account: Account
) -> None:
    with pytest.raises(MaybeSent, match="broke while the server was taking the message.*may have been sent"):
        imap_smtp.send(outgoing(to=f"someone@{DROP_DOMAIN}"), "31")

    assert len(smtp_server.messages_for(mail_account)) == 1  # it was, in fact
    assert imap_smtp.was_sent("31", "") is None  # so the outgoing run will not send it again
    imap_smtp.send(outgoing(), "32")  # a new connection for the next message
    assert imap_smtp.was_sent("32", "") is True


def test_imap_smtp_a_refused_message_leaves_no_copy(
    imap_smtp: SMTPTransport, smtp_server: Any, dovecot: Any, mail_account: Account
) -> None:
    with pytest.raises(ItemError):
        imap_smtp.send(outgoing(to=f"ghost@{REFUSED_DOMAIN}"), "5")

    assert dovecot.flags(mail_account, "Sent") == {}
    assert imap_smtp.was_sent("5", "") is False


def test_imap_smtp_finds_an_existing_sent_folder_by_its_name(
    mail_servers: MailServers, dovecot: Any, mail_account: Account
) -> None:
    dovecot.deliver(mail_account, raw("Sent before"), folder="Sent Items")
    transport = IMAPTransport(endpoint(mail_account, dovecot.imap_port))
    try:
        assert transport.sent_folder() == "Sent Items"
    finally:
        transport.close()


# Errors


@pytest.mark.parametrize("kind", ["pop3", "imap", "smtp"])
def test_refused_credentials_are_permanent(mail_servers: MailServers, mail_account: Account, kind: str) -> None:
    transport = _transport(mail_servers, mail_account, kind, password="wrong")

    with pytest.raises(
        PermanentError, match="The server refused the credentials: .*[Aa]uthentication (failed|credentials invalid)"
    ):
        transport.check()


@pytest.mark.parametrize("kind", ["pop3", "imap", "smtp"])
def test_a_closed_port_is_transient(mail_servers: MailServers, mail_account: Account, kind: str) -> None:
    port = free_port()  # nothing listens there
    transport = _transport(mail_servers, mail_account, kind, port=port)

    with pytest.raises(TransientError, match=f"{HOST}:{port} refused the connection"):
        transport.check()


def _transport(servers: MailServers, account: Account, kind: str, **change: Any) -> Any:
    ports = {"pop3": servers.dovecot.pop3_port, "imap": servers.dovecot.imap_port, "smtp": servers.smtp.port}
    ends = {"tls": False, "port": ports[kind], "password": None} | change
    end = endpoint(account, ends["port"], ends["tls"], ends["password"])
    return {"pop3": POP3Transport, "imap": IMAPTransport, "smtp": SMTPTransport}[kind](end)


# TLS


@pytest.mark.parametrize("kind", ["pop3", "imap", "smtp"])
def test_implicit_tls(mail_servers: MailServers, mail_account: Account, trust_test_ca: None, kind: str) -> None:
    ports = {
        "pop3": mail_servers.dovecot.pop3s_port,
        "imap": mail_servers.dovecot.imaps_port,
        "smtp": mail_servers.smtp.tls_port,
    }
    transport = _transport(mail_servers, mail_account, kind, port=ports[kind], tls=True)
    try:
        if kind == "smtp":
            transport.send(outgoing(), "9")
            assert [r.tls for r in mail_servers.smtp.messages_for(mail_account)] == [True]
        else:
            mail_servers.dovecot.deliver(mail_account, raw("Over TLS"))
            assert subjects(transport.fetch("inbox", "", 10)) == ["Over TLS"]
    finally:
        transport.close()


@pytest.mark.parametrize("kind", ["pop3", "imap", "smtp"])
def test_starttls_on_the_plaintext_ports(
    mail_servers: MailServers, mail_account: Account, trust_test_ca: None, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # The test servers' plaintext ports are high ones: count them as 110/143/587 are counted.
    plain = {"pop3": mail_servers.dovecot.pop3_port, "imap": mail_servers.dovecot.imap_port}
    plain["smtp"] = mail_servers.smtp.port
    monkeypatch.setattr(connection, "STARTTLS_PORTS", frozenset(plain.values()))
    transport = _transport(mail_servers, mail_account, kind, tls=True)
    try:
        if kind == "smtp":
            transport.send(outgoing(), "9")
            assert [r.tls for r in mail_servers.smtp.messages_for(mail_account)] == [True]
        else:
            mail_servers.dovecot.deliver(mail_account, raw("After STARTTLS"))
            assert subjects(transport.fetch("inbox", "", 10)) == ["After STARTTLS"]
            session = transport._pop if kind == "pop3" else transport._imap
            assert isinstance(session.sock, ssl.SSLSocket)
    finally:
        transport.close()


@pytest.mark.parametrize("kind", ["pop3", "imap", "smtp"])
def test_tls_against_a_plaintext_port_fails_in_words(
    mail_servers: MailServers, mail_account: Account, trust_test_ca: None, kind: str
) -> None:
    transport = _transport(mail_servers, mail_account, kind, tls=True)

    with pytest.raises(PermanentError, match=r"TLS with 127\.0\.0\.1:\d+ failed .*the port may not speak TLS"):
        transport.check()


def test_an_untrusted_certificate_fails_in_words(mail_servers: MailServers, mail_account: Account) -> None:
    transport = _transport(mail_servers, mail_account, "imap", port=mail_servers.dovecot.imaps_port, tls=True)

    with pytest.raises(PermanentError, match="The certificate of 127.0.0.1:.* is not trusted"):
        transport.check()


# Test & Enable, with mailboxes as the portal keeps them


def run(mailbox: Mailbox, system: Any) -> dict[str, dict[str, str]]:
    test = run_test(enqueue_test(mailbox, system).pk)
    assert test is not None
    mailbox.refresh_from_db()
    return test.results


@pytest.mark.django_db
@pytest.mark.parametrize("kind", [POP3_SMTP, IMAP_SMTP])
def test_test_and_enable_passes_email_and_refuses_act(
    org: Any, alice: Any, mail_servers: MailServers, mail_account: Account, system: Any, kind: str
) -> None:
    profile = mail_profile(org, mail_servers, kind)
    mailbox = mail_mailbox(org, alice, mail_account, profile, act_method="server_side")

    results = run(mailbox, system)

    assert {ch: r["status"] for ch, r in results.items()} == {
        "incoming": "success",
        "outgoing": "success",
        "act": "failure",
    }
    assert "carries email only" in results["act"]["message"]
    assert (mailbox.enabled_incoming, mailbox.enabled_outgoing, mailbox.enabled_act) == (True, True, False)
    if kind == IMAP_SMTP:  # the Sent folder where copies go is there
        assert mail_servers.dovecot.flags(mail_account, "Sent") == {}


@pytest.mark.django_db
def test_test_and_enable_over_tls_with_the_profiles_credentials(
    org: Any, alice: Any, mail_servers: MailServers, mail_account: Account, trust_test_ca: None, system: Any
) -> None:
    profile = mail_profile(
        org,
        mail_servers,
        IMAP_SMTP,
        tls=True,
        credentials_source="profile",
        username=mail_account.address,
        password=mail_account.password,
    )
    mailbox = mail_mailbox(org, alice, mail_account, profile)
    Mailbox.objects.filter(pk=mailbox.pk).update(username="", password="")
    mailbox.refresh_from_db()

    results = run(mailbox, system)

    assert (results["incoming"]["status"], results["outgoing"]["status"]) == ("success", "success")


@pytest.mark.django_db
def test_test_and_enable_reports_a_wrong_password_and_tls_mismatch_in_words(
    org: Any, alice: Any, mail_servers: MailServers, mail_account: Account, system: Any
) -> None:
    profile = mail_profile(org, mail_servers, POP3_SMTP, outgoing_tls=True)
    mailbox = mail_mailbox(org, alice, mail_account, profile)
    mailbox.password = "wrong"
    mailbox.save()

    results = run(mailbox, system)

    assert results["incoming"]["status"] == "failure"
    assert results["incoming"]["message"].startswith("The server refused the credentials: -ERR [AUTH]")
    assert results["outgoing"]["status"] == "failure"
    assert "the port may not speak TLS" in results["outgoing"]["message"]
    assert "wrong" not in mailbox.disabled_reason
    assert (mailbox.enabled_incoming, mailbox.enabled_outgoing) == (False, False)


# End to end: the incoming and outgoing runs (syncjobs.mail.channel) over the real servers


def enabled(mailbox: Mailbox, channel: str) -> Mailbox:
    """Tested and enabled for one email channel, as Test & Enable leaves it."""
    setattr(mailbox, f"test_{channel}", TestStatus.SUCCESS)
    setattr(mailbox, f"enabled_{channel}", True)
    mailbox.test_overall = TestStatus.SUCCESS
    mailbox.save()
    return mailbox


def sync(mailbox: Mailbox, channel: str) -> SyncRun:
    done = run_sync(enqueue_sync(mailbox, channel, Trigger.MANUAL).pk)
    assert done is not None, "the run was not claimed"
    assert done.status == RunStatus.SUCCEEDED, done.error
    return done


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", [POP3_SMTP, IMAP_SMTP])
def test_a_delivered_message_becomes_a_crm_email_through_an_incoming_run(
    org: Any, alice: Any, admin: Any, mail_servers: MailServers, mail_account: Account, rq_queues: str, kind: str
) -> None:
    ann = Contact.objects.create(organization=org, owner=admin, last_name="Lee", email="ann@customer.example")
    profile = mail_profile(org, mail_servers, kind)
    mailbox = mail_mailbox(org, alice, mail_account, profile, tracking_rule=TrackingRule.FROM_CRM_RECORDS)
    enabled(mailbox, Channel.INCOMING)
    mail_servers.dovecot.deliver(mail_account, raw("Order"))
    mail_servers.dovecot.deliver(mail_account, raw("Lottery").replace(b"ann@customer", b"win@lottery"))

    first = sync(mailbox, Channel.INCOMING)

    assert first.counts == {"tracked": 1, "skipped": 1}
    email = Email.objects.get()
    assert (email.subject, email.tracked_by, email.owner) == ("Order", TrackedBy.RULE_CRM_RECORDS, alice)
    assert email.recipients.get(kind="from").contact == ann
    source_id = EmailReceipt.objects.get(email=email, mailbox=mailbox).source_id
    assert source_id.endswith(":1") if kind == IMAP_SMTP else len(source_id) == 16  # "<uidvalidity>:<uid>"; UIDL
    assert sync(mailbox, Channel.INCOMING).counts == {}  # seen once: nothing new, nothing twice
    assert Email.objects.count() == 1
    if kind == IMAP_SMTP:
        assert all("\\Seen" not in flags for flags in mail_servers.dovecot.flags(mail_account).values())


@pytest.mark.django_db(transaction=True)
def test_an_imap_tracked_folder_is_fetched_by_the_incoming_run(
    org: Any, alice: Any, admin: Any, mail_servers: MailServers, mail_account: Account, rq_queues: str
) -> None:
    acme = CrmAccount.objects.create(organization=org, owner=admin, name="Acme Corp")
    profile = mail_profile(org, mail_servers, IMAP_SMTP)
    mailbox = enabled(
        mail_mailbox(org, alice, mail_account, profile, tracking_rule=TrackingRule.NONE), Channel.INCOMING
    )
    TrackedFolder.objects.create(mailbox=mailbox, folder_name="Projects/Acme", regarding_account=acme)
    mail_servers.dovecot.deliver(mail_account, raw("About the project"), folder="Projects/Acme")

    sync(mailbox, Channel.INCOMING)

    email = Email.objects.get()
    assert (email.subject, email.tracked_by, email.regarding_account) == ("About the project", TrackedBy.FOLDER, acme)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", [POP3_SMTP, IMAP_SMTP])
def test_a_pending_email_goes_out_through_an_outgoing_run_over_smtp(
    org: Any, alice: Any, mail_servers: MailServers, mail_account: Account, rq_queues: str, kind: str
) -> None:
    profile = mail_profile(org, mail_servers, kind)
    mailbox = enabled(mail_mailbox(org, alice, mail_account, profile), Channel.OUTGOING)
    email = Email.objects.create(
        organization=org,
        owner=alice,
        mailbox=mailbox,
        direction=EmailDirection.OUTGOING,
        status=EmailStatus.PENDING_SEND,
        subject="Your quote",
        to=["Bob <bob@partner.example>"],
        body_text="Here it is.",
    )

    done = sync(mailbox, Channel.OUTGOING)

    email.refresh_from_db()
    assert (email.status, done.counts.get("sent")) == (EmailStatus.SENT, 1)
    [received] = mail_servers.smtp.messages_for(mail_account)
    delivered = BytesParser(policy=default_policy).parsebytes(received.content)
    assert delivered[CRM_ID_HEADER] == str(email.pk)
    assert delivered["Subject"] == f"Your quote CRM:{email.tracking_number}"
    assert delivered["Message-ID"] == email.message_id
    if kind == IMAP_SMTP:
        assert mail_servers.dovecot.flags(mail_account, "Sent") == {1: {"\\Seen"}}
    assert sync(mailbox, Channel.OUTGOING) and len(mail_servers.smtp.messages_for(mail_account)) == 1
