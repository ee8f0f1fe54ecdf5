"""The sync monitoring page and the alerts' Acknowledge, for the administrators of each organization.

Every figure on the page is an aggregate or a bounded list: the number of queries does not
grow with the number of mailboxes, runs or items.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from audit.log import Actor
from crmsync_portal import health
from mailboxes.access import ADMIN, memberships, org_ids, role_required
from mailboxes.models import Channel, EmailServerProfile, Mailbox, TestStatus
from monitoring.alerts import flagged_profiles
from monitoring.charts import run_charts
from monitoring.models import Alert, AlertKind, advice
from monitoring.states import DESCRIPTIONS, MailboxState, count_by_state, in_state, stall_minutes, with_last_run
from syncjobs.engine import MAX_TRIES
from syncjobs.health import WINDOW, share
from syncjobs.models import Conflict, ConflictStatus, ErrorKind, ItemLink, LinkState, SyncRun

LISTED = 20  # failing and stalled mailboxes, mailboxes with items to look at
ALERTS_LISTED = 50


def get_alert_for_user(request: HttpRequest, pk: Any, roles: tuple[str, ...] = ADMIN) -> Alert:
    """Another organization's alert is a 404; a member who is no administrator gets a 403."""
    alert = Alert.objects.select_related("organization", "mailbox", "profile").filter(pk=pk).first()
    if alert is None:
        raise Http404
    role = memberships(request.user).get(alert.organization_id)
    if role is None:
        raise Http404
    if role not in roles:
        raise PermissionDenied
    return alert


def unresolved_alerts(alerts: QuerySet[Alert]) -> list[Alert]:
    # "open" sorts after "acknowledged": descending puts the open ones first, newest first.
    related = ("mailbox__user", "profile", "acknowledged_by", "organization")
    return list(alerts.unresolved().select_related(*related).order_by("-status", "-created")[:ALERTS_LISTED])


def failure(mailbox: Mailbox) -> tuple[str, str]:
    """A failing mailbox's last error and what to do about it (for ``with_last_run`` mailboxes)."""
    disabled = any(
        getattr(mailbox, f"test_{ch}") == TestStatus.FAILURE and not getattr(mailbox, f"enabled_{ch}")
        for ch in Channel.values
    )
    if disabled:
        return mailbox.disabled_reason or mailbox.last_error, advice(AlertKind.CHANNEL_DISABLED)
    if mailbox.last_run_kind == ErrorKind.GUARD:
        return mailbox.last_error, advice(AlertKind.MASS_DELETE_REFUSED)
    if mailbox.last_run_kind == ErrorKind.LOST:
        return mailbox.last_error, _(
            "The worker running the sync stopped; the run is queued again. Check that the workers are running."
        )
    return mailbox.last_error, _(
        "The portal tries again by itself (failure %(n)s of %(max)s in a row; then the channel is disabled). "
        "If it goes on failing, check the server and the network."
    ) % {"n": mailbox.consecutive_failures, "max": MAX_TRIES}


def queue_figures() -> dict[str, Any] | None:
    """Jobs waiting per queue and the workers running; None when Redis cannot be reached (or does
    not answer within health.REDIS_TIMEOUT: the page never hangs on Redis)."""
    redis = health.redis_connection()
    try:
        depths, workers = health.queue_depths(redis)
    except (RedisError, OSError):
        return None
    finally:
        redis.close()
    return {"queues": list(depths.items()), "workers": workers}


def _count(model: Any, **filters: Any) -> Coalesce:
    counted = model.objects.filter(mailbox=OuterRef("pk"), **filters).order_by().values("mailbox")
    return Coalesce(Subquery(counted.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), Value(0))


def items_to_look_at(mailboxes: QuerySet[Mailbox]) -> dict[str, Any]:
    """Quarantined items and open conflicts: totals, and the mailboxes with the most (listed on their pages)."""
    quarantined = ItemLink.objects.filter(mailbox__in=mailboxes, state=LinkState.QUARANTINED)
    conflicts = Conflict.objects.filter(mailbox__in=mailboxes, status=ConflictStatus.OPEN)
    listed = (
        mailboxes.annotate(
            n_quarantined=_count(ItemLink, state=LinkState.QUARANTINED),
            n_conflicts=_count(Conflict, status=ConflictStatus.OPEN),
        )
        .filter(Q(n_quarantined__gt=0) | Q(n_conflicts__gt=0))
        .select_related("user")
        .order_by((F("n_quarantined") + F("n_conflicts")).desc(), "address")
    )
    return {
        "quarantined": quarantined.count(),
        "conflicts": conflicts.count(),
        "mailboxes": list(listed[:LISTED]),
    }


def _mailbox_lists(mailboxes: QuerySet[Mailbox], now: datetime) -> dict[str, Any]:
    related = mailboxes.select_related("user", "organization", "profile")
    failing = list(
        with_last_run(in_state(related, MailboxState.FAILING, now)).order_by(
            F("last_run_at").desc(nulls_last=True), "address"
        )[:LISTED]
    )
    for mailbox in failing:
        mailbox.error, mailbox.advice = failure(mailbox)
    stalled = list(in_state(related, MailboxState.STALLED, now).order_by("last_ok", "address")[:LISTED])
    for mailbox in stalled:
        mailbox.stall_minutes = stall_minutes(mailbox, now)
    return {"failing": failing, "stalled": stalled}


@require_GET
@role_required(*ADMIN)
def monitoring(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    orgs = org_ids(request.user, ADMIN)
    mailboxes = Mailbox.objects.filter(organization_id__in=orgs)
    counts = count_by_state(mailboxes, now)
    day, week = run_charts(SyncRun.objects.filter(mailbox__organization_id__in=orgs), now)
    profiles = flagged_profiles(
        EmailServerProfile.objects.filter(organization_id__in=orgs).select_related("organization"), now
    )
    for profile in profiles:
        profile.failing_percent = round(100 * share(profile.n_failing, profile.n_mailboxes))
    ctx = {
        "states": [(state, state.label, DESCRIPTIONS[state], counts[state]) for state in MailboxState],
        "total": sum(counts.values()),
        **_mailbox_lists(mailboxes, now),
        "counts": counts,
        "day": day,
        "week": week,
        "queue": queue_figures(),
        "items": items_to_look_at(mailboxes),
        "profiles": profiles,
        "window_minutes": int(WINDOW.total_seconds() // 60),
        "alerts": unresolved_alerts(Alert.objects.filter(organization_id__in=orgs)),
        "emails_off": settings.MAILERS["default"]["BACKEND"].endswith(".console.EmailBackend"),
        "listed": LISTED,
    }
    return render(request, "monitoring/monitoring.html", ctx)


@require_GET
@role_required(*ADMIN)
def mailboxes_in_state(request: HttpRequest) -> HttpResponse:
    """The mailboxes in one state (?state=failing), a page at a time."""
    now = timezone.now()
    state = request.GET.get("state") or MailboxState.FAILING
    if state not in MailboxState.values:
        raise Http404
    mailboxes = Mailbox.objects.filter(organization_id__in=org_ids(request.user, ADMIN))
    listed = in_state(mailboxes.select_related("user", "organization", "profile"), state, now).order_by("address", "id")
    page = Paginator(listed, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    counts = count_by_state(mailboxes, now)
    ctx = {
        "state": MailboxState(state),
        "description": DESCRIPTIONS[MailboxState(state)],
        "tabs": [(s.value, s.label, counts[s]) for s in MailboxState],
        "page": page,
    }
    return render(request, "monitoring/mailbox_list.html", ctx)


@require_POST
@role_required(*ADMIN)
def alert_acknowledge(request: HttpRequest, pk: Any) -> HttpResponse:
    alert = get_alert_for_user(request, pk)
    if alert.acknowledge(Actor.from_request(request)):
        messages.success(request, _("Alert acknowledged: %(alert)s") % {"alert": alert.title})
    else:
        messages.info(request, _("This alert was acknowledged or resolved already."))
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect("monitoring")
