"""Sync actions for administrators: Test & Enable, Sync now, confirm deletes, release, resolve.

Each action is a POST of its own that enqueues through syncjobs.jobs (which audits)
or changes one row and audits it, then redirects back to the mailbox page. The
mailbox page shows ``mailbox_sync_context``; its status part polls ``mailbox_status``
while a test or a run of the mailbox is queued or running.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from audit.log import Actor, record
from crm.models import SYNCED_MODELS
from mailboxes.access import (
    ADMIN,
    get_mailbox_for_user,
    get_profile_for_user,
    role_required,
    selected_mailboxes,
)
from mailboxes.models import Channel, Mailbox
from syncjobs.access import get_conflict_for_user, get_link_for_user, get_run_for_user
from syncjobs.jobs import enqueue_sync, enqueue_test
from syncjobs.models import (
    Conflict,
    ConflictStatus,
    ErrorKind,
    ItemLink,
    LinkState,
    RunStatus,
    SyncRun,
    TestRun,
    TestRunStatus,
    Trigger,
    shown,
)
from syncjobs.testenable import sync_refusal

RUNS_SHOWN = 10
ITEMS_SHOWN = 50
ACTIVE_TEST = (TestRunStatus.QUEUED, TestRunStatus.RUNNING)
# A test not done by then was lost with its worker (the test queue's jobs time out after 5 minutes):
# the page stops polling for it rather than spin for ever.
TEST_GIVE_UP = timedelta(minutes=15)


def _back(request: HttpRequest, fallback: str, *args: Any) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback, *args)


# The mailbox page


def _record_names(keys: set[tuple[str, Any]]) -> dict[tuple[str, str], str]:
    """{(record type, id): the record's name}, one query per record type."""
    by_type: dict[str, set[Any]] = defaultdict(set)
    for record_type, crm_id in keys:
        by_type[record_type].add(crm_id)
    names = {}
    for record_type, ids in by_type.items():
        model = SYNCED_MODELS.get(record_type)
        if model is not None:
            for obj in model.all_objects.filter(pk__in=ids):
                names[(record_type, str(obj.pk))] = str(obj)
    return names


def status_context(mailbox: Mailbox) -> dict[str, Any]:
    """What the status fragment shows: tests, recent runs, and whether to keep polling (two queries)."""
    test = TestRun.objects.filter(mailbox=mailbox).first()
    runs = list(SyncRun.objects.filter(mailbox=mailbox)[:RUNS_SHOWN])
    results = test.results if test and test.status == TestRunStatus.DONE else {}
    channel_tests = [
        {"label": row["label"], "value": row["test_value"], "test": row["test"], **results.get(channel, {})}
        for channel, row in zip(Channel.values, mailbox.channel_rows(), strict=True)
    ]
    # Deletes can be confirmed on the newest finished run of a channel, if the guard stopped it.
    newest_finished: dict[str, SyncRun] = {}
    for run in runs:
        if not run.is_active:
            newest_finished.setdefault(run.channel, run)
    for run in runs:
        run.can_confirm = run.error_kind == ErrorKind.GUARD and newest_finished.get(run.channel) is run
    last_finished = next((run for run in runs if run.finished_at), None)
    test_active = bool(test and test.status in ACTIVE_TEST and test.queued_at > timezone.now() - TEST_GIVE_UP)
    return {
        "mailbox": mailbox,
        "test": test,
        "test_active": test_active,
        "channel_tests": channel_tests,
        "runs": runs,
        "last_run": last_finished,
        "active": test_active or any(run.is_active for run in runs),
    }


def mailbox_sync_context(mailbox: Mailbox) -> dict[str, Any]:
    """Everything the mailbox page shows about syncing, in a bounded number of queries (at most eight)."""
    quarantined = list(ItemLink.objects.filter(mailbox=mailbox, state=LinkState.QUARANTINED)[:ITEMS_SHOWN])
    conflicts = list(Conflict.objects.filter(mailbox=mailbox, status=ConflictStatus.OPEN)[:ITEMS_SHOWN])
    names = _record_names({(x.record_type, x.crm_id) for x in [*quarantined, *conflicts]})
    for item in [*quarantined, *conflicts]:
        item.record_name = names.get((item.record_type, str(item.crm_id)), "")
    for conflict in conflicts:
        conflict.rows = [
            {
                "field": field,
                "base": shown(conflict.base.get(field)),
                "crm": shown(conflict.crm_values.get(field)),
                "exchange": shown(conflict.exchange_values.get(field)),
                "applied": conflict.resolution.get(field, ""),
            }
            for field in conflict.fields
        ]
    return {
        **status_context(mailbox),
        "quarantined": quarantined,
        "conflicts": conflicts,
        "sync_refusal": sync_refusal(mailbox, Channel.ACT),
        "alerts": list(mailbox.alerts.unresolved().select_related("acknowledged_by").order_by("-status", "-created")),
    }


@role_required(*ADMIN)
def mailbox_status(request: HttpRequest, pk: Any) -> HttpResponse:
    """The status fragment the mailbox page polls while something is queued or running."""
    mailbox = get_mailbox_for_user(request, pk)
    return render(request, "syncjobs/_status.html", status_context(mailbox))


# Test & Enable


@require_POST
@role_required(*ADMIN)
def mailbox_test(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk)
    enqueue_test(mailbox, Actor.from_request(request))
    messages.success(request, _("Test & Enable of %(mailbox)s is queued.") % {"mailbox": mailbox})
    return _back(request, "mailbox-detail", mailbox.pk)


def _enqueue_tests(request: HttpRequest, mailboxes: list[Mailbox]) -> None:
    actor = Actor.from_request(request)
    with transaction.atomic():
        for mailbox in mailboxes:
            enqueue_test(mailbox, actor)
    n = len(mailboxes)
    text = ngettext("Test & Enable of %(n)d mailbox is queued.", "Test & Enable of %(n)d mailboxes is queued.", n)
    messages.success(request, text % {"n": n})


@require_POST
@role_required(*ADMIN)
def mailboxes_test(request: HttpRequest) -> HttpResponse:
    """Test & Enable the selected mailboxes: all of them, or none if one is not the admin's."""
    if not request.POST.getlist("mailbox"):
        messages.error(request, _("Select at least one mailbox."))
        return _back(request, "mailbox-list")
    _enqueue_tests(request, selected_mailboxes(request, ADMIN))
    return _back(request, "mailbox-list")


@require_POST
@role_required(*ADMIN)
def profile_test(request: HttpRequest, pk: Any) -> HttpResponse:
    profile = get_profile_for_user(request, pk)
    mailboxes = list(profile.mailboxes.select_related("organization"))
    if not mailboxes:
        messages.error(request, _("No mailbox uses this profile."))
    else:
        _enqueue_tests(request, mailboxes)
    return redirect("profile-detail", profile.pk)


# Runs


@require_POST
@role_required(*ADMIN)
def mailbox_sync(request: HttpRequest, pk: Any) -> HttpResponse:
    mailbox = get_mailbox_for_user(request, pk)
    refusal = sync_refusal(mailbox, Channel.ACT)
    if refusal:
        messages.error(request, _("%(mailbox)s cannot sync now. %(why)s") % {"mailbox": mailbox, "why": refusal})
    else:
        enqueue_sync(mailbox, Channel.ACT, Trigger.MANUAL, Actor.from_request(request))
        messages.success(request, _("A sync of %(mailbox)s is queued.") % {"mailbox": mailbox})
    return redirect("mailbox-detail", mailbox.pk)


@require_POST
@role_required(*ADMIN)
def run_confirm_deletes(request: HttpRequest, pk: Any) -> HttpResponse:
    """Run again, allowing the deletes the mass-delete guard stopped this run from applying."""
    run = get_run_for_user(request, pk)
    mailbox = run.mailbox
    later = SyncRun.objects.filter(mailbox=mailbox, channel=run.channel, queued_at__gt=run.queued_at).exclude(
        status__in=(RunStatus.QUEUED, RunStatus.RUNNING)
    )
    if run.error_kind != ErrorKind.GUARD:
        messages.error(request, _("The mass-delete guard did not stop this run: there are no deletes to confirm."))
    elif later.exists():
        messages.error(request, _("A later run has finished since: confirm the deletes of the latest run instead."))
    elif refusal := sync_refusal(mailbox, run.channel):
        messages.error(request, _("%(mailbox)s cannot sync now. %(why)s") % {"mailbox": mailbox, "why": refusal})
    else:
        enqueue_sync(mailbox, run.channel, Trigger.MANUAL, Actor.from_request(request), allow_mass_delete=True)
        text = _("The deletes are confirmed: a sync of %(mailbox)s is queued.")
        messages.success(request, text % {"mailbox": mailbox})
    return redirect("mailbox-detail", mailbox.pk)


# Items


@require_POST
@role_required(*ADMIN)
def link_release(request: HttpRequest, pk: Any) -> HttpResponse:
    """Let a quarantined item sync again: its failures are forgotten."""
    link = get_link_for_user(request, pk)
    mailbox = link.mailbox
    with transaction.atomic():
        # "Error" with no failures counted: the next run tries it again (links in error are always retried).
        released = ItemLink.objects.filter(pk=link.pk, state=LinkState.QUARANTINED).update(
            state=LinkState.ERROR, error_count=0, last_error="", next_retry_at=None
        )
        if released:
            record(
                Actor.from_request(request),
                "mailbox.item_released",
                mailbox,
                changes={"item": ["", f"{link.record_type} {link.crm_id}"], "state": [link.state, LinkState.ERROR]},
                organization=mailbox.organization,
            )
    if released:
        messages.success(request, _("The item is released: the next sync tries it again."))
    else:
        messages.error(request, _("This item is not quarantined."))
    return redirect("mailbox-detail", mailbox.pk)


@require_POST
@role_required(*ADMIN)
def conflict_apply_other(request: HttpRequest, pk: Any) -> HttpResponse:
    """Write the side the engine did not apply into the CRM record (``Conflict.settle``); the next
    sync carries it to the mailbox."""
    found = get_conflict_for_user(request, pk)
    other = {f: "crm" if found.resolution.get(f) == "exchange" else "exchange" for f in found.fields}
    if not found.settle(Actor.from_request(request), other):
        messages.error(request, _("This conflict is closed already, or its record is gone."))
        return redirect("mailbox-detail", found.mailbox.pk)
    messages.success(request, _("The other side's values are in the CRM record; the next sync carries them over."))
    return redirect("mailbox-detail", found.mailbox.pk)
