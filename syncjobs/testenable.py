"""Test & Enable: check each channel of a mailbox against its server, enable what passed.

DOMAIN.md, Gating: nothing syncs until Test & Enable passed for the channel. The
``TestRun`` row is the job; ``run_test`` claims it, tests, and records the outcome
on the run and on the mailbox. ``backend_for`` is the one seam to the servers: unit
tests patch it, integration tests point a profile at ewsim.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from audit.log import Actor, record
from crmsync_portal.lib.crypto import DecryptionError
from crmsync_portal.lib.fields import is_set, stored_value
from mailboxes.models import Channel, IncomingMethod, Mailbox, ProfileKind, TestStatus
from syncjobs.backends.base import CHANNEL_FOLDERS
from syncjobs.errors import SyncError
from syncjobs.models import TestRun, TestRunStatus

log = logging.getLogger(__name__)

ACTOR = Actor.system("test & enable")
SUCCESS, FAILURE, NOT_RUN = TestStatus.SUCCESS.value, TestStatus.FAILURE.value, TestStatus.NOT_RUN.value


def gate_problem(mailbox: Mailbox, channel: str) -> str:
    """Why the mailbox cannot use a channel at all, in plain words; "" when nothing stands in the way."""
    profile = mailbox.profile
    if profile is None:
        return _("The mailbox has no email server profile.")
    if not mailbox.address:
        return _("The mailbox has no email address.")
    if not mailbox.address_ok():
        return _("The email address %(address)s is not approved (%(status)s).") % {
            "address": mailbox.address,
            "status": mailbox.get_approval_status_display(),
        }
    if channel == Channel.ACT and not profile.carries_act:
        return _(
            "The server profile “%(profile)s” (%(kind)s) carries email only: "
            "appointments, contacts and tasks cannot sync through it."
        ) % {"profile": profile.name, "kind": profile.get_kind_display()}
    if mailbox.needs_own_credentials and not is_set(mailbox, "password") and profile.auth_type != "oauth2":
        return _("The server profile uses each mailbox's own credentials, and this mailbox has no password.")
    return ""


def sync_refusal(mailbox: Mailbox, channel: str) -> str:
    """Why ``mailbox.can_sync(channel)`` is false, in plain words; "" when it may sync."""
    if not mailbox.is_active:
        return _("The mailbox is not active.")
    if not mailbox.in_sync_organization():
        return _(
            "%(organization)s is not the synchronizing organization of %(owner)s: only that "
            "organization syncs with the mailbox."
        ) % {"organization": mailbox.organization.name, "owner": mailbox.owner_name}
    if mailbox.method(channel) == IncomingMethod.NONE:
        return _("The sync method of “%(channel)s” is None.") % {"channel": Channel(channel).label}
    problem = gate_problem(mailbox, channel)
    if problem:
        return problem
    if getattr(mailbox, f"test_{channel}") != TestStatus.SUCCESS:
        status = getattr(mailbox, f"get_test_{channel}_display")()
        return _("Test & Enable has not passed for “%(channel)s” (test: %(status)s).") % {
            "channel": Channel(channel).label,
            "status": status,
        }
    if not getattr(mailbox, f"enabled_{channel}"):
        reason = mailbox.disabled_reason or _("no reason was recorded")
        return _("“%(channel)s” is disabled: %(reason)s") % {"channel": Channel(channel).label, "reason": reason}
    return ""


class MailServer:
    """POP3/IMAP and SMTP, with the same test methods as the Exchange backend.

    ``check`` does nothing: incoming and outgoing may use different servers, so each
    folder test logs in to its own ("inbox": POP3/IMAP, "sentitems": SMTP, and for an
    IMAP/SMTP profile the IMAP Sent folder where sent mail is kept), through the
    transports the email channels use, with their TLS and their errors.
    """

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    def check(self) -> None:
        pass

    def test_folders(self, folders: tuple[str, ...]) -> None:
        from syncjobs.mail.imap import IMAPTransport
        from syncjobs.mail.pop3 import POP3Transport
        from syncjobs.mail.smtp import SMTPTransport

        assert self.mailbox.profile is not None
        incoming = IMAPTransport if self.mailbox.profile.kind == ProfileKind.IMAP_SMTP else POP3Transport
        for folder in folders:
            transport = (
                SMTPTransport.for_mailbox(self.mailbox) if folder == "sentitems" else incoming.for_mailbox(self.mailbox)
            )
            try:
                transport.check()
            finally:
                transport.close()

    def close(self) -> None:
        pass


def backend_for(mailbox: Mailbox) -> Any:
    """The server behind a mailbox: the one seam of Test & Enable."""
    assert mailbox.profile is not None
    if mailbox.profile.is_exchange:
        from syncjobs.backends.ews import EwsBackend

        return EwsBackend(mailbox)
    return MailServer(mailbox)


def _message(error: Exception) -> str:
    if isinstance(error, SyncError):
        return str(error)
    if isinstance(error, DecryptionError):
        return f"{error} Enter the password again on the server profile or the mailbox."
    return f"Unexpected error ({type(error).__name__}): {error}"


def check_channels(mailbox: Mailbox) -> dict[str, dict[str, str]]:
    """Each channel's result in words: not run (method None), failure or success.

    1. A channel the mailbox cannot use (no profile, address not approved, email-only
       profile for ACT) fails without asking the server.
    2. The others share one backend: ``check()`` once, so wrong credentials fail every
       channel at once; then each channel opens its folders.
    3. The backend is always closed.
    """
    results: dict[str, dict[str, str]] = {}
    to_test = []
    for channel in Channel.values:
        if mailbox.method(channel) == IncomingMethod.NONE:
            results[channel] = {"status": NOT_RUN, "message": gettext_noop("The sync method is None: nothing to test.")}
            continue
        problem = gate_problem(mailbox, channel)
        if problem:
            results[channel] = {"status": FAILURE, "message": problem}
        else:
            to_test.append(channel)
    if not to_test:
        return results
    backend = None
    try:
        backend = backend_for(mailbox)
        backend.check()
    except Exception as error:
        message = _message(error)
        for channel in to_test:
            results[channel] = {"status": FAILURE, "message": message}
        if backend is not None:
            backend.close()
        return results
    try:
        for channel in to_test:
            try:
                backend.test_folders(CHANNEL_FOLDERS[channel])
            except Exception as error:
                results[channel] = {"status": FAILURE, "message": _message(error)}
            else:
                results[channel] = {"status": SUCCESS, "message": gettext_noop("Passed.")}
    finally:
        backend.close()
    return results


def _fingerprint(mailbox: Mailbox) -> tuple[Any, ...]:
    profile = mailbox.profile
    password = stored_value(mailbox, "password")  # compared as stored: no key needed
    return (mailbox.address, mailbox.profile_id, mailbox.username, password, profile and profile.updated)


def run_test(test_id: Any) -> TestRun | None:
    """Claim a queued TestRun, test the mailbox's channels, record and apply the outcome.

    1. Claim: queued → running with one conditional UPDATE; None when another worker has it.
    2. Test each channel (``check_channels``), outside any transaction: servers are slow.
    3. In one transaction, with the mailbox row locked: if its address, profile or
       credentials changed while the test ran, the outcome is stale and is not applied;
       otherwise set the test statuses, enable what passed, disable what failed.
    4. A failed channel raises an alert: a "mailbox.test_failed" audit event with the reasons.
    """
    now = timezone.now()
    claimed = TestRun.objects.filter(pk=test_id, status=TestRunStatus.QUEUED).update(
        status=TestRunStatus.RUNNING, started_at=now
    )
    if claimed != 1:
        return None
    test = TestRun.objects.select_related("mailbox__profile", "mailbox__organization").get(pk=test_id)
    mailbox = test.mailbox
    tested = _fingerprint(mailbox)
    try:
        results = check_channels(mailbox)
    except Exception as error:  # a bug must not leave the run "running" for ever
        log.exception("Test & Enable of %s failed", mailbox)
        results = {ch: {"status": FAILURE, "message": _message(error)} for ch in Channel.values}
    with transaction.atomic():
        mailbox = (
            Mailbox.objects.select_for_update(of=("self",)).select_related("profile", "organization").get(pk=mailbox.pk)
        )
        if _fingerprint(mailbox) != tested:
            note = "The mailbox or its server profile changed while it was tested: run Test & Enable again."
            results = {ch: {"status": NOT_RUN, "message": note} for ch in Channel.values}
        else:
            _apply(mailbox, results, timezone.now())
        test.results = results
        test.status = TestRunStatus.DONE
        test.finished_at = timezone.now()
        test.save(update_fields=["results", "status", "finished_at"])
    return test


def _apply(mailbox: Mailbox, results: dict[str, dict[str, str]], now: Any) -> None:
    statuses = {ch: r["status"] for ch, r in results.items()}
    failed = {ch: results[ch]["message"] for ch, s in statuses.items() if s == FAILURE}
    passed = [ch for ch, s in statuses.items() if s == SUCCESS]
    for channel, status in statuses.items():
        setattr(mailbox, f"test_{channel}", status)
        setattr(mailbox, f"enabled_{channel}", status == SUCCESS)
    mailbox.test_overall = FAILURE if failed else SUCCESS if passed else NOT_RUN
    mailbox.tested_at = now
    fields = [*(f"test_{ch}" for ch in statuses), *(f"enabled_{ch}" for ch in statuses)]
    fields += ["test_overall", "tested_at", "disabled_reason", "updated"]
    mailbox.disabled_reason = " ".join(f"{Channel(ch).label}: {msg}" for ch, msg in failed.items())
    if passed:
        # The server accepted the mailbox again: the old sync errors are history.
        mailbox.consecutive_failures = 0
        mailbox.last_error = ""
        fields += ["consecutive_failures", "last_error"]
    if statuses.get(Channel.ACT) == SUCCESS:
        mailbox.next_sync_at = now  # the scheduler picks it up at once
        fields.append("next_sync_at")
    mailbox.save_audited(ACTOR, "mailbox.tested", update_fields=fields)
    if failed:
        record(
            ACTOR,
            "mailbox.test_failed",
            mailbox,
            changes={ch: ["", msg] for ch, msg in failed.items()},
            organization=mailbox.organization,
        )
