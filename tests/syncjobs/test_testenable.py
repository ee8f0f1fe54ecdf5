"""Test & Enable (DOMAIN.md, Gating): against a real EWS simulator, and once through a real RQ worker."""

from __future__ import annotations

import base64
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import django_rq
import pytest
from rq import SimpleWorker

from audit.models import AuditEvent
from ewsim.testing import RunningSimulator
from mailboxes.models import EmailServerProfile, Mailbox, ProfileKind, TestStatus
from syncjobs import testenable
from syncjobs.errors import PermanentError
from syncjobs.jobs import enqueue_test
from syncjobs.models import TestRun, TestRunStatus
from syncjobs.testenable import run_test
from tests.conftest import make_mailbox, make_profile
from tests.syncjobs.conftest import ALICE, SERVICE

pytestmark = pytest.mark.django_db

CHANNELS = ("incoming", "outgoing", "act")


@pytest.fixture
def ews_profile(org: Any, sim: RunningSimulator) -> EmailServerProfile:
    """A service account that may impersonate every mailbox of the simulator."""
    return make_profile(org, "Simulator", ews_url=sim.ews_url, username=SERVICE, password="svc-pw")


def approved(mailbox: Mailbox) -> Mailbox:
    Mailbox.objects.filter(pk=mailbox.pk).update(approval_status="approved")
    mailbox.refresh_from_db()
    return mailbox


@pytest.fixture
def box(org: Any, alice: Any, ews_profile: EmailServerProfile) -> Mailbox:
    return approved(make_mailbox(org, alice, ALICE, ews_profile))


def run(mailbox: Mailbox, system: Any) -> TestRun:
    test = run_test(enqueue_test(mailbox, system).pk)
    assert test is not None, "the test was not claimed"
    mailbox.refresh_from_db()
    return test


def statuses(test: TestRun) -> dict[str, str]:
    return {channel: result["status"] for channel, result in test.results.items()}


def enabled(mailbox: Mailbox) -> tuple[bool, bool, bool]:
    return (mailbox.enabled_incoming, mailbox.enabled_outgoing, mailbox.enabled_act)


def failed_event(mailbox: Mailbox) -> AuditEvent | None:
    return AuditEvent.objects.filter(action="mailbox.test_failed", object_id=str(mailbox.pk)).first()


# Against the simulator


def test_it_enables_every_channel_that_passes(box: Mailbox, system: Any) -> None:
    Mailbox.objects.filter(pk=box.pk).update(last_error="old", consecutive_failures=4, disabled_reason="HTTP 401")

    test = run(box, system)

    assert test.status == TestRunStatus.DONE
    assert test.finished_at is not None
    assert statuses(test) == {"incoming": "success", "outgoing": "success", "act": "success"}
    assert (box.test_incoming, box.test_outgoing, box.test_act, box.test_overall) == ("success",) * 4
    assert enabled(box) == (True, True, True)
    assert box.can_sync("act")
    assert box.tested_at is not None
    assert box.next_sync_at == box.tested_at  # the scheduler picks it up at once
    assert (box.last_error, box.consecutive_failures, box.disabled_reason) == ("", 0, "")
    event = AuditEvent.objects.get(action="mailbox.tested", object_id=str(box.pk))
    assert event.actor_name == "test & enable"
    assert event.changes["enabled_act"] == [False, True]
    assert failed_event(box) is None


def test_a_wrong_password_fails_every_channel_with_the_servers_401(
    box: Mailbox, ews_profile: EmailServerProfile, system: Any
) -> None:
    Mailbox.objects.filter(pk=box.pk).update(
        test_act=TestStatus.SUCCESS, enabled_act=True, enabled_incoming=True, test_incoming=TestStatus.SUCCESS
    )
    EmailServerProfile.objects.filter(pk=ews_profile.pk).update(password="wrong-pw")
    box.refresh_from_db()

    test = run(box, system)

    assert statuses(test) == {"incoming": "failure", "outgoing": "failure", "act": "failure"}
    assert "refused the credentials (HTTP 401)" in test.results["act"]["message"]
    assert (box.test_act, box.test_overall) == ("failure", "failure")
    assert enabled(box) == (False, False, False)
    assert not box.can_sync("act")
    assert "HTTP 401" in box.disabled_reason
    assert box.next_sync_at is None
    event = failed_event(box)
    assert event is not None
    assert set(event.changes) == set(CHANNELS)
    assert "HTTP 401" in event.changes["act"][1]
    assert "wrong-pw" not in str(event.changes)  # no secrets in the alert


def test_impersonation_refused_names_error_impersonate_user_denied(
    org: Any, box: Mailbox, sim: RunningSimulator, system: Any
) -> None:
    sim.control.create_mailbox("plain@example.com", "plain-pw")  # may not impersonate
    plain = make_profile(org, "Plain", ews_url=sim.ews_url, username="plain@example.com", password="plain-pw")
    Mailbox.objects.filter(pk=box.pk).update(profile=plain)
    box.refresh_from_db()

    test = run(box, system)

    assert statuses(test) == {"incoming": "failure", "outgoing": "failure", "act": "failure"}
    assert "ErrorImpersonateUserDenied" in test.results["act"]["message"]
    assert box.test_overall == TestStatus.FAILURE
    assert "ErrorImpersonateUserDenied" in failed_event(box).changes["incoming"][1]


def test_an_unknown_mailbox_fails(org: Any, bob: Any, ews_profile: EmailServerProfile, system: Any) -> None:
    mailbox = approved(make_mailbox(org, bob, "nobody@example.com", ews_profile))

    test = run(mailbox, system)

    assert statuses(test) == {"incoming": "failure", "outgoing": "failure", "act": "failure"}
    assert "ErrorNonExistentMailbox" in test.results["act"]["message"]
    assert mailbox.test_overall == TestStatus.FAILURE
    assert enabled(mailbox) == (False, False, False)


def test_the_credentials_are_checked_once_then_each_channels_folders(box: Mailbox, sim: RunningSimulator, system: Any):
    sim.control.clear_requests()

    run(box, system)

    # check() reads the inbox once; then inbox, sentitems, and contacts, calendar, tasks.
    requests = sim.control.requests()
    assert [r["operation"] for r in requests] == ["FindItem"] * 6
    assert {r["http_status"] for r in requests} == {200}


# Without asking the server


class FakeBackend:
    """Stands in for the server behind ``testenable.backend_for``: fails the folders it is told to."""

    def __init__(self, failing: dict[str, Exception] | None = None, check_error: Exception | None = None) -> None:
        self.failing = failing or {}
        self.check_error = check_error
        self.calls: list[Any] = []
        self.closed = False

    def check(self) -> None:
        self.calls.append("check")
        if self.check_error:
            raise self.check_error

    def test_folders(self, folders: tuple[str, ...]) -> None:
        self.calls.append(folders)
        for folder in folders:
            if folder in self.failing:
                raise self.failing[folder]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBackend]:
    backend = FakeBackend()
    monkeypatch.setattr(testenable, "backend_for", lambda mailbox: backend)
    yield backend


def test_a_pop3_profile_fails_act_because_it_carries_email_only(
    org: Any, alice: Any, pop3_profile: EmailServerProfile, fake: FakeBackend, system: Any
) -> None:
    mailbox = approved(make_mailbox(org, alice, ALICE, pop3_profile, act_method="server_side"))
    fake.failing = {"sentitems": PermanentError("535 5.7.8 Authentication credentials invalid")}

    test = run(mailbox, system)

    assert statuses(test) == {"incoming": "success", "outgoing": "failure", "act": "failure"}
    assert "carries email only" in test.results["act"]["message"]
    assert "535 5.7.8" in test.results["outgoing"]["message"]
    assert fake.calls == ["check", ("inbox",), ("sentitems",)]  # ACT never reaches the server
    assert (mailbox.test_incoming, mailbox.test_outgoing, mailbox.test_act) == ("success", "failure", "failure")
    assert mailbox.test_overall == TestStatus.FAILURE
    assert enabled(mailbox) == (True, False, False)
    assert "carries email only" in mailbox.disabled_reason
    assert mailbox.next_sync_at is None
    assert fake.closed


def test_an_address_not_approved_fails_without_asking_the_server(
    alice_mailbox: Mailbox, fake: FakeBackend, system: Any
) -> None:
    test = run(alice_mailbox, system)

    assert statuses(test) == {"incoming": "failure", "outgoing": "failure", "act": "failure"}
    assert "alice@example.com is not approved (Pending approval)" in test.results["incoming"]["message"]
    assert fake.calls == []


def test_a_mailbox_without_profile_fails_in_words(org: Any, alice: Any, fake: FakeBackend, system: Any) -> None:
    mailbox = approved(make_mailbox(org, alice, ALICE, None, incoming_method="none", outgoing_method="none"))

    test = run(mailbox, system)

    assert test.results["act"] == {"status": "failure", "message": "The mailbox has no email server profile."}
    assert fake.calls == []


def test_a_channel_with_method_none_is_not_run(box: Mailbox, fake: FakeBackend, system: Any) -> None:
    Mailbox.objects.filter(pk=box.pk).update(outgoing_method="none", incoming_method="client")
    box.refresh_from_db()

    test = run(box, system)

    assert statuses(test) == {"incoming": "success", "outgoing": "not_run", "act": "success"}
    assert (box.test_outgoing, box.enabled_outgoing, box.test_overall) == ("not_run", False, "success")
    assert fake.calls == ["check", ("inbox",), ("contacts", "calendar", "tasks")]


def test_a_failed_check_fails_every_channel_and_closes_the_backend(box: Mailbox, fake: FakeBackend, system: Any):
    fake.check_error = PermanentError("The server refused the credentials (HTTP 401): Invalid credentials")

    test = run(box, system)

    assert statuses(test) == {"incoming": "failure", "outgoing": "failure", "act": "failure"}
    assert fake.calls == ["check"]
    assert fake.closed


def test_an_unexpected_error_is_a_failure_in_words_and_closes_the_backend(box: Mailbox, fake: FakeBackend, system):
    fake.failing = {"calendar": ValueError("bad calendar")}

    test = run(box, system)

    assert test.results["act"] == {"status": "failure", "message": "Unexpected error (ValueError): bad calendar"}
    assert statuses(test)["incoming"] == "success"
    assert fake.closed


def test_a_test_is_claimed_once(box: Mailbox, fake: FakeBackend, system: Any) -> None:
    test = enqueue_test(box, system)

    assert run_test(test.pk) is not None
    assert run_test(test.pk) is None
    assert fake.calls.count("check") == 1


def test_a_running_test_is_not_claimed_again(box: Mailbox, fake: FakeBackend, system: Any) -> None:
    test = enqueue_test(box, system)
    TestRun.objects.filter(pk=test.pk).update(status=TestRunStatus.RUNNING)

    assert run_test(test.pk) is None
    assert fake.calls == []


def test_a_mailbox_changed_during_the_test_is_not_enabled(box: Mailbox, fake: FakeBackend, system: Any) -> None:
    def edit_meanwhile() -> None:
        Mailbox.objects.filter(pk=box.pk).update(address="alice.new@example.com")

    fake.check = edit_meanwhile  # type: ignore[method-assign]

    test = run(box, system)

    assert statuses(test) == {"incoming": "not_run", "outgoing": "not_run", "act": "not_run"}
    assert "changed while it was tested" in test.results["act"]["message"]
    assert enabled(box) == (False, False, False)
    assert box.test_overall == TestStatus.NOT_RUN


# POP3 and SMTP, against tiny local servers


class _LineServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(handler: type[socketserver.StreamRequestHandler]) -> Iterator[int]:
    server = _LineServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class Pop3Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"+OK POP3 ready\r\n")
        for raw in self.rfile:
            command, _, arg = raw.decode().strip().partition(" ")
            if command == "PASS":
                ok = arg == "pop-pw"
                self.wfile.write(b"+OK logged in\r\n" if ok else b"-ERR [AUTH] Authentication failed.\r\n")
            elif command == "QUIT":
                self.wfile.write(b"+OK bye\r\n")
                return
            else:
                self.wfile.write(b"+OK\r\n")


class SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 smtp ready\r\n")
        for raw in self.rfile:
            line = raw.decode().strip()
            if line.upper().startswith("EHLO"):
                self.wfile.write(b"250-smtp\r\n250 AUTH PLAIN\r\n")
            elif line.upper().startswith("AUTH PLAIN"):
                ok = "pop-pw" in base64.b64decode(line.split()[-1]).decode()
                self.wfile.write(b"235 2.7.0 Accepted\r\n" if ok else b"535 5.7.8 Authentication failed\r\n")
            elif line.upper() == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def mail_profile(org: Any) -> Iterator[EmailServerProfile]:
    for pop_port in _serve(Pop3Handler):
        for smtp_port in _serve(SmtpHandler):
            yield make_profile(
                org,
                "Local POP3",
                kind=ProfileKind.POP3_SMTP,
                ews_url="",
                username="svc@example.com",
                password="pop-pw",
                incoming_host="127.0.0.1",
                incoming_port=pop_port,
                incoming_tls=False,
                outgoing_host="127.0.0.1",
                outgoing_port=smtp_port,
                outgoing_tls=False,
                timeout_seconds=5,
            )


def test_pop3_and_smtp_log_in(org: Any, alice: Any, mail_profile: EmailServerProfile, system: Any) -> None:
    mailbox = approved(make_mailbox(org, alice, ALICE, mail_profile, act_method="none"))

    test = run(mailbox, system)

    assert statuses(test) == {"incoming": "success", "outgoing": "success", "act": "not_run"}
    assert (mailbox.enabled_incoming, mailbox.enabled_outgoing, mailbox.test_overall) == (True, True, "success")


def test_pop3_and_smtp_refusals_are_in_the_servers_words(
    org: Any, alice: Any, mail_profile: EmailServerProfile, system: Any
) -> None:
    EmailServerProfile.objects.filter(pk=mail_profile.pk).update(password="wrong")
    mailbox = approved(make_mailbox(org, alice, ALICE, mail_profile, act_method="none"))

    test = run(mailbox, system)

    assert test.results["incoming"] == {
        "status": "failure",
        "message": "The server refused the credentials: -ERR [AUTH] Authentication failed.",
    }
    assert test.results["outgoing"] == {
        "status": "failure",
        "message": "The server refused the credentials: 535 5.7.8 Authentication failed",
    }
    assert mailbox.test_overall == TestStatus.FAILURE


# Through the queue


def test_the_job_runs_through_a_real_rq_worker(
    box: Mailbox, rq_queues: str, system: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        test = enqueue_test(box, system)

    worker = django_rq.get_worker("default", worker_class=SimpleWorker)
    assert worker.work(burst=True)

    # The row holds the outcome; RQ keeps nothing of a finished job.
    assert django_rq.get_queue("default").fetch_job(f"test_job-{test.pk}") is None
    test.refresh_from_db()
    assert test.status == TestRunStatus.DONE
    box.refresh_from_db()
    assert statuses(test) == {"incoming": "success", "outgoing": "success", "act": "success"}
    assert box.can_sync("act")
