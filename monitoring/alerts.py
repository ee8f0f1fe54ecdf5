"""Raising, emailing and resolving alerts.

``raise_alert`` is called where the condition is found: the sync engine (a channel disabled,
a mass delete refused) and the scheduler's pass (``check``: stalled mailboxes, flagged
profiles). Each alert is emailed once, by an RQ job queued after the transaction that raised
it commits: neither a sync run nor the scheduler waits for the mail server.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import override

from mailboxes.models import EmailServerProfile, Mailbox, Role
from monitoring.models import UNRESOLVED, Alert, AlertKind, AlertStatus
from monitoring.states import MailboxState, in_state, stall_minutes
from syncjobs.health import failing_counts, is_failing, share

log = logging.getLogger(__name__)

# At most this many new alerts of each kind per scheduler pass: with the workers down every
# mailbox stalls at once, and the next passes raise the rest.
RAISE_PER_PASS = 100
# Emails that failed are tried again by the scheduler's passes for this long.
EMAIL_RETRY_FOR = timedelta(days=1)
# The RQ queue the emails are sent from (the workers' "default" queue).
EMAIL_QUEUE = "default"
# A flagged profile's alert resolves once this share of its mailboxes or less failed within the
# hour (it is raised over half): a profile hovering around half is not alerted again and again.
PROFILE_CLEAR_SHARE = 0.25


def raise_alert(
    kind: str,
    *,
    mailbox: Mailbox | None = None,
    profile: EmailServerProfile | None = None,
    channel: str = "",
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> Alert | None:
    """Raise an alert about a mailbox or a profile; returns it if it is new, None if one of this kind
    and subject is unresolved already (then nothing changes, however often or concurrently raised).

    1. Insert the alert in a savepoint: the partial unique constraint refuses a second unresolved
       one, from this process or any other, and the refusal leaves the caller's transaction intact.
    2. Once the caller's transaction commits, queue its email (``enqueue_email``): a worker sends
       it (``send_email``), once.
    """
    subject = mailbox if mailbox is not None else profile
    assert subject is not None, "an alert is about a mailbox or a profile"
    lookup = {"kind": kind, "mailbox": mailbox, "profile": profile, "channel": channel}
    if Alert.objects.filter(**lookup, status__in=UNRESOLVED).exists():
        return None
    alert = Alert(organization_id=subject.organization_id, detail=detail[:4000], data=data or {}, **lookup)
    try:
        with transaction.atomic():
            alert.save(force_insert=True)
    except IntegrityError:
        return None  # raised meanwhile by another run or pass
    transaction.on_commit(lambda: enqueue_email(alert.pk))
    return alert


def _email_job_id(alert_id: Any) -> str:
    return f"send_email-{alert_id}"


def enqueue_email(alert_id: Any) -> bool:
    """Queue the RQ job that emails an alert (``send_email``), unless one is waiting or running
    for it already; True if queued. Redis down: logged, and a later scheduler pass tries again."""
    try:
        # At once ("auto"): called after the commit already (raise_alert), or by the scheduler's pass.
        queue = django_rq.get_queue(EMAIL_QUEUE, commit_mode="auto")
        job = queue.fetch_job(_email_job_id(alert_id))
        if job is not None and job.get_status(refresh=False) in ("queued", "started", "deferred", "scheduled"):
            return False
        queue.enqueue(send_email, str(alert_id), job_id=_email_job_id(alert_id), result_ttl=0)
    except Exception:
        log.warning("Queueing the email of alert %s failed; the scheduler tries again", alert_id, exc_info=True)
        return False
    return True


def recipients(alert: Alert) -> list[str]:
    """The organization's administrators and, for a mailbox alert, the mailbox's owner: their addresses."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    admins = Q(memberships__organization_id=alert.organization_id, memberships__role=Role.ADMINISTRATOR)
    owner = Q(pk=alert.mailbox.user_id) if alert.mailbox_id and alert.mailbox.user_id else Q(pk__in=[])
    return sorted(set(users.filter(admins | owner).values_list("email", flat=True)))


def send_email(alert_id: Any) -> bool:
    """Email an alert to its recipients unless that was done; True if this call sent it. The RQ
    job that ``enqueue_email`` queues.

    1. Claim the alert with a conditional UPDATE of ``emailed_at``: of all the senders (the job
       queued on commit, the jobs a scheduler pass queues again) exactly one goes on. A restart
       never sends an alert again; one claimed by a process that died before sending stays unsent.
    2. Send one message to all recipients, in the portal's language.
    3. If sending fails, release the claim: a later scheduler pass tries again.
    """
    now = timezone.now()
    if not Alert.objects.filter(pk=alert_id, emailed_at__isnull=True).update(emailed_at=now):
        return False
    alert = Alert.objects.select_related("organization", "mailbox__user", "profile").get(pk=alert_id)
    to = recipients(alert)
    if not to:
        log.warning("Alert %s has no one to email: no administrator of %s has an address", alert.pk, alert.organization)
        return False
    try:
        with override(settings.LANGUAGE_CODE):
            message = EmailMessage(
                subject=f"[{settings.SITE_NAME}] {alert.get_kind_display()}: {alert.subject}",
                body=render_to_string("monitoring/alert_email.txt", _email_context(alert)),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=to,
            )
            message.send()
    except Exception:
        log.warning("Emailing alert %s failed; the scheduler tries again", alert.pk, exc_info=True)
        Alert.objects.filter(pk=alert_id, emailed_at=now).update(emailed_at=None)
        return False
    return True


def _email_context(alert: Alert) -> dict[str, Any]:
    base = settings.PORTAL_URL.rstrip("/")
    return {
        "alert": alert,
        "site_name": settings.SITE_NAME,
        "subject_url": f"{base}{alert.subject_url}" if base else "",
        "monitoring_url": f"{base}{reverse('monitoring')}" if base else "",
    }


# The scheduler's pass ---------------------------------------------------------------------------


def check(now: datetime | None = None) -> dict[str, int]:
    """One monitoring pass of the scheduler: raise what is found, resolve what cleared, queue
    again the emails that were not sent. Sends nothing itself: the workers do."""
    now = now or timezone.now()
    counts = failing_counts(EmailServerProfile.objects.all(), now)
    raised = raise_stalled(now) + raise_flagged(now, counts)
    resolved = resolve_cleared(now, counts)
    retried = sum(
        enqueue_email(pk)
        for pk in Alert.objects.filter(emailed_at__isnull=True, created__gte=now - EMAIL_RETRY_FOR)
        .exclude(created__gt=now - timedelta(minutes=1))  # the raiser's own hook queued those
        .values_list("pk", flat=True)[:RAISE_PER_PASS]
    )
    return {"alerts_raised": raised, "alerts_resolved": resolved, "alert_emails_retried": retried}


def _unresolved(kind: str, **subject: Any) -> Exists:
    return Exists(Alert.objects.filter(kind=kind, status__in=UNRESOLVED, **subject))


def stalled_mailboxes(now: datetime) -> Any:
    return in_state(Mailbox.objects.all(), MailboxState.STALLED, now)


def raise_stalled(now: datetime) -> int:
    new = stalled_mailboxes(now).exclude(_unresolved(AlertKind.MAILBOX_STALLED, mailbox=OuterRef("pk")))
    raised = 0
    for mailbox in new.select_related("organization")[:RAISE_PER_PASS]:
        data = {"minutes": stall_minutes(mailbox, now)}
        raised += raise_alert(AlertKind.MAILBOX_STALLED, mailbox=mailbox, data=data) is not None
    return raised


def flagged_profiles(
    profiles: Any, now: datetime, counts: dict[Any, tuple[int, int]] | None = None
) -> list[EmailServerProfile]:
    """The profiles over half of whose mailboxes failed within the hour (syncjobs.health), each with
    ``n_failing`` and ``n_mailboxes``: three queries (one, given the profiles' ``counts``)."""
    counts = failing_counts(profiles, now) if counts is None else counts
    flagged_counts = {pk: n for pk, n in counts.items() if is_failing(share(*n))}
    flagged = list(profiles.filter(pk__in=list(flagged_counts))) if flagged_counts else []
    for profile in flagged:
        profile.n_failing, profile.n_mailboxes = flagged_counts[profile.pk]
    return flagged


def raise_flagged(now: datetime, counts: dict[Any, tuple[int, int]]) -> int:
    raised = 0
    for profile in flagged_profiles(EmailServerProfile.objects.all(), now, counts)[:RAISE_PER_PASS]:
        data = {"failing": profile.n_failing, "total": profile.n_mailboxes}
        raised += raise_alert(AlertKind.PROFILE_FLAGGED, profile=profile, data=data) is not None
    return raised


def resolve_cleared(now: datetime, counts: dict[Any, tuple[int, int]]) -> int:
    """Resolve the unresolved alerts whose cause is gone; returns how many. ``counts``: every
    profile's failing mailboxes (syncjobs.health.failing_counts).

    - A disabled channel: enabled again (Test & Enable passed).
    - A refused mass delete, a stalled mailbox: a run succeeded since the alert. (Not merely "not
      stalled now": a run that starts makes the mailbox not stalled until its worker is lost, and
      a mailbox whose runs keep dying would be alerted and emailed again each time.)
    - A flagged profile: PROFILE_CLEAR_SHARE of its mailboxes or fewer failed within the hour.
    - Any mailbox alert: the mailbox was made inactive; a stalled one also when no channel is
      enabled any more (nothing to sync).
    """
    enabled_again = Q()
    for channel in ("incoming", "outgoing", "act"):
        enabled_again |= Q(channel=channel, **{f"mailbox__enabled_{channel}": True})
    still_failing = [pk for pk, n in counts.items() if share(*n) > PROFILE_CLEAR_SHARE]
    nothing_enabled = Q(mailbox__enabled_act=False, mailbox__enabled_incoming=False, mailbox__enabled_outgoing=False)
    succeeded_since = Q(mailbox__last_success_at__gt=F("created"))
    cleared = (
        Q(kind=AlertKind.CHANNEL_DISABLED) & enabled_again
        | Q(kind__in=[AlertKind.MASS_DELETE_REFUSED, AlertKind.MAILBOX_STALLED]) & succeeded_since
        | Q(kind=AlertKind.MAILBOX_STALLED) & nothing_enabled
        | Q(kind=AlertKind.PROFILE_FLAGGED) & ~Q(profile__in=still_failing)
        | Q(mailbox__is_active=False)
    )
    ids = list(Alert.objects.unresolved().filter(cleared).values_list("pk", flat=True))
    return Alert.objects.filter(pk__in=ids, status__in=UNRESOLVED).update(status=AlertStatus.RESOLVED, resolved_at=now)
