"""The sync monitoring page: mailboxes by state, failing and stalled ones, runs, queue, items, profiles."""

from __future__ import annotations

import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
import pytest
from django.utils import timezone
from rq import Queue

from crmsync_portal import health
from mailboxes.models import Mailbox, TestStatus
from monitoring.charts import run_charts
from monitoring.states import MailboxState, count_by_state, in_state
from monitoring.views import queue_figures
from syncjobs.models import Conflict, ErrorKind, ItemLink, LinkState, RunStatus, SyncRun
from tests.conftest import client_for, make_conflict, make_profile
from tests.monitoring.conftest import enabled, finished_run, in_each_state, queue_mailbox

pytestmark = pytest.mark.django_db


def cell(html: str, attribute: str, value: str) -> str:
    found = re.search(rf'{attribute}="{value}">([^<]*)<', html)
    assert found, f"no {attribute}={value}"
    return found.group(1).strip()


# States


def test_each_mailbox_counts_in_exactly_one_state(org: Any, profile: Any, now: datetime) -> None:
    in_each_state(org, profile, now)
    counts = count_by_state(Mailbox.objects.all(), now)
    assert counts == {"syncing": 1, "failing": 2, "stalled": 1, "never_tested": 1, "disabled": 1}
    for state in MailboxState:
        assert in_state(Mailbox.objects.all(), state, now).count() == counts[state]


def test_the_page_shows_the_counts_of_the_admins_organizations_only(
    admin: Any, org: Any, profile: Any, other_org: Any, other_profile: Any, now: datetime
) -> None:
    in_each_state(org, profile, now)
    in_each_state(other_org, other_profile, now, suffix="-globex")
    html = client_for(admin).get("/monitoring/").content.decode()
    shown = {state.value: int(cell(html, "data-state", state.value)) for state in MailboxState}
    assert shown == {"syncing": 1, "failing": 2, "stalled": 1, "never_tested": 1, "disabled": 1}
    assert "globex" not in html
    assert 'href="/monitoring/mailboxes/?state=stalled"' in html


def test_a_mailbox_is_stalled_after_three_polling_intervals_of_its_profile(org: Any, now: datetime) -> None:
    hourly = make_profile(org, "Hourly", polling_interval_minutes=60)
    ago = {"last_success_at": now - timedelta(minutes=16), "next_sync_at": now - timedelta(minutes=1)}
    five = queue_mailbox(org, make_profile(org, "Five"), "five", **enabled(now, **ago))
    sixty = queue_mailbox(org, hourly, "sixty", **enabled(now, **ago))
    stalled = in_state(Mailbox.objects.all(), MailboxState.STALLED, now)
    assert list(stalled) == [five]
    assert in_state(Mailbox.objects.all(), MailboxState.SYNCING, now).get() == sixty
    assert list(in_state(Mailbox.objects.all(), MailboxState.STALLED, now + timedelta(minutes=165))) == [five, sixty]


def test_a_mailbox_never_synced_stalls_three_intervals_after_its_test(org: Any, profile: Any, now: datetime) -> None:
    mailbox = queue_mailbox(org, profile, "fresh", **enabled(now, last_success_at=None, next_sync_at=None))
    Mailbox.objects.filter(pk=mailbox.pk).update(tested_at=now - timedelta(minutes=14))
    assert count_by_state(Mailbox.objects.all(), now)["syncing"] == 1
    assert count_by_state(Mailbox.objects.all(), now + timedelta(minutes=2))["stalled"] == 1


def test_a_mailbox_with_a_run_working_on_it_is_not_stalled(org: Any, profile: Any, now: datetime) -> None:
    old = {"last_success_at": now - timedelta(hours=2), "next_sync_at": now - timedelta(hours=1)}
    mailbox = queue_mailbox(org, profile, "big", **enabled(now, **old))
    SyncRun.objects.create(mailbox=mailbox, status=RunStatus.RUNNING, started_at=now, heartbeat_at=now)
    assert count_by_state(Mailbox.objects.all(), now)["syncing"] == 1
    # A run whose worker stopped sending heartbeats works on nothing.
    SyncRun.objects.filter(mailbox=mailbox).update(heartbeat_at=now - timedelta(minutes=5))
    assert count_by_state(Mailbox.objects.all(), now)["stalled"] == 1


def test_a_mailbox_whose_tests_were_reset_is_never_tested_again(org: Any, profile: Any, now: datetime) -> None:
    mailbox = in_each_state(org, profile, now)["disabled_channel"]
    fields = mailbox.reset_tests()
    mailbox.save(update_fields=fields)
    assert in_state(Mailbox.objects.all(), MailboxState.NEVER_TESTED, now).filter(pk=mailbox.pk).exists()


def test_each_failing_mailbox_shows_its_error_and_what_to_do(admin: Any, org: Any, profile: Any, now: datetime) -> None:
    boxes = in_each_state(org, profile, now)
    finished_run(boxes["failing"], now - timedelta(minutes=2), RunStatus.FAILED, error="The server is busy.")
    guarded = queue_mailbox(
        org, profile, "guarded", **enabled(now, consecutive_failures=1, last_error="This run would delete 30 of 40")
    )
    finished_run(guarded, now - timedelta(minutes=1), RunStatus.FAILED, error_kind=ErrorKind.GUARD)
    response = client_for(admin).get("/monitoring/")
    rows = {m.address: m for m in response.context["failing"]}
    assert set(rows) == {"busy@example.com", "denied@example.com", "guarded@example.com"}
    assert rows["denied@example.com"].error == "HTTP 401: the server refused the credentials."
    assert "Test & Enable again" in rows["denied@example.com"].advice
    assert "tries again by itself (failure 2 of 10" in rows["busy@example.com"].advice
    assert "confirm them on the mailbox page" in rows["guarded@example.com"].advice
    html = response.content.decode()
    assert "HTTP 401: the server refused the credentials." in html
    assert f'href="/mailboxes/{boxes["failing"].pk}/"' in html


def test_stalled_mailboxes_are_listed_with_the_minutes_without_sync(
    admin: Any, org: Any, profile: Any, now: datetime
) -> None:
    stalled = in_each_state(org, profile, now)["stalled"]
    [shown] = client_for(admin).get("/monitoring/").context["stalled"]
    assert shown == stalled
    assert shown.stall_minutes in (16, 17)


def test_the_mailbox_list_of_a_state_lists_those_mailboxes(admin: Any, org: Any, profile: Any, now: datetime) -> None:
    in_each_state(org, profile, now)
    response = client_for(admin).get("/monitoring/mailboxes/?state=failing")
    assert [m.address for m in response.context["page"].object_list] == ["busy@example.com", "denied@example.com"]
    assert "HTTP 401" in response.content.decode()
    assert client_for(admin).get("/monitoring/mailboxes/?state=nonsense").status_code == 404


# Runs per hour


def test_the_charts_count_the_runs_per_hour_and_outcome(org: Any, profile: Any) -> None:
    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    mailbox = queue_mailbox(org, profile, "charted")
    finished_run(mailbox, now - timedelta(minutes=10))  # 12:20
    finished_run(mailbox, now - timedelta(minutes=20))  # 12:10
    finished_run(mailbox, now - timedelta(minutes=25), RunStatus.FAILED)  # 12:05
    finished_run(mailbox, now - timedelta(hours=3), RunStatus.PARTIAL)  # 09:30
    finished_run(mailbox, now - timedelta(hours=30))  # yesterday 06:30: the week only
    finished_run(mailbox, now - timedelta(days=8))  # too old for both
    SyncRun.objects.create(mailbox=mailbox, status=RunStatus.RUNNING, started_at=now)  # not finished
    day, week = run_charts(SyncRun.objects.all(), now)
    assert len(day.bars) == 24 and day.bars[-1].start == datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert day.bars[-1].counts == {"succeeded": 2, "partial": 0, "failed": 1}
    assert day.bars[-4].counts == {"succeeded": 0, "partial": 1, "failed": 0}
    assert sum(bar.total for bar in day.bars) == 4
    assert day.totals == {"succeeded": 2, "partial": 1, "failed": 1}
    assert len(week.bars) == 28 and week.bars[-1].start == datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert week.bars[-1].counts == {"succeeded": 2, "partial": 0, "failed": 1}
    assert week.bars[-2].counts == {"succeeded": 0, "partial": 1, "failed": 0}  # 06:00-12:00
    assert week.bars[-6].counts == {"succeeded": 1, "partial": 0, "failed": 0}  # yesterday 06:00-12:00
    assert week.totals == {"succeeded": 3, "partial": 1, "failed": 1}


def test_the_bars_fit_the_chart_and_stack_to_their_total(org: Any, profile: Any) -> None:
    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    mailbox = queue_mailbox(org, profile, "stacked")
    for minutes in range(7):
        finished_run(mailbox, now - timedelta(minutes=minutes), RunStatus.FAILED if minutes % 3 else "succeeded")
    day, _week = run_charts(SyncRun.objects.all(), now)
    bar = day.bars[-1]
    assert (bar.total, day.top) == (7, 10)
    assert [s.outcome for s in bar.segments] == ["succeeded", "failed"]
    heights = sum(s.height for s in bar.segments)
    assert heights == pytest.approx(bar.total / day.top * (day.baseline - day.top_y), abs=0.05)
    assert min(s.y for s in bar.segments) >= day.top_y


def test_the_page_draws_both_charts_with_a_table_of_their_figures(
    admin: Any, org: Any, profile: Any, now: datetime
) -> None:
    mailbox = queue_mailbox(org, profile, "drawn")
    finished_run(mailbox, now - timedelta(minutes=1))
    finished_run(mailbox, now - timedelta(minutes=2), RunStatus.FAILED)
    html = client_for(admin).get("/monitoring/", HTTP_ACCEPT_LANGUAGE="da").content.decode()
    for chart in ("runs-day", "runs-week"):
        svg = html.split(f'id="{chart}"', 1)[1].split("</svg>", 1)[0]
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in svg
        assert svg.count("<rect ") == 2
        # Coordinates stay numbers with a decimal point in every language.
        assert re.search(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+"', svg)
        assert f'id="{chart}-table"' in html


# Queue, items, profiles


def test_the_queue_shows_the_jobs_waiting_and_the_workers(admin: Any, rq_queues: str) -> None:
    # Straight to Redis: django-rq's own queue would wait for the test's transaction to commit.
    Queue("sync", connection=django_rq.get_connection("sync")).enqueue("syncjobs.jobs.sync_job", "x")
    html = client_for(admin).get("/monitoring/").content.decode()
    assert cell(html, "data-queue", "sync") == "1"
    assert cell(html, "data-queue", "default") == "0"
    assert re.search(r'id="workers">0<', html)
    assert "No worker is running" in html


def test_the_page_works_when_redis_is_down(admin: Any, settings: Any) -> None:
    settings.RQ_QUEUES = {name: {**q, "URL": "redis://127.0.0.1:1/0"} for name, q in settings.RQ_QUEUES.items()}
    response = client_for(admin).get("/monitoring/")
    assert response.status_code == 200
    assert "The queue (Redis) cannot be reached" in response.content.decode()


def test_the_queue_figures_give_up_on_a_redis_that_does_not_answer(settings: Any, monkeypatch: Any) -> None:
    """A Redis that takes connections and never answers (packets dropped): the page's figures give up
    after health.REDIS_TIMEOUT instead of waiting for TCP to time out."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts connections; no one answers
    url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    settings.RQ_QUEUES = {name: {**q, "URL": url} for name, q in settings.RQ_QUEUES.items()}
    monkeypatch.setattr(health, "REDIS_TIMEOUT", 0.2)
    figures: list[Any] = []
    reader = threading.Thread(target=lambda: figures.append(queue_figures()), daemon=True)
    reader.start()
    reader.join(timeout=60)  # a bound for the failure's sake (it would hang); answered well before
    silent.close()  # a reader still waiting gets a reset and ends
    assert figures == [None]


def test_quarantined_items_and_open_conflicts_are_counted_and_linked(
    admin: Any, org: Any, profile: Any, alice: Any, now: datetime
) -> None:
    from tests.crm.test_views import make_record

    one, two = queue_mailbox(org, profile, "one"), queue_mailbox(org, profile, "two")
    for _ in range(3):
        ItemLink.objects.create(
            mailbox=one, record_type="task", crm_id=make_record("task", org, alice).pk, state=LinkState.QUARANTINED
        )
    ItemLink.objects.create(mailbox=two, record_type="task", crm_id=make_record("task", org, alice).pk)  # in sync
    make_conflict(two, make_record("contact", org, alice))
    closed = make_conflict(two, make_record("contact", org, alice))
    Conflict.objects.filter(pk=closed.pk).update(status="closed")
    response = client_for(admin).get("/monitoring/")
    items = response.context["items"]
    assert (items["quarantined"], items["conflicts"]) == (3, 1)
    assert [(m.address, m.n_quarantined, m.n_conflicts) for m in items["mailboxes"]] == [
        ("one@example.com", 3, 0),
        ("two@example.com", 0, 1),
    ]
    html = response.content.decode()
    assert f'href="/mailboxes/{one.pk}/#quarantined-heading">3<' in html
    assert f'href="/mailboxes/{two.pk}/#open-conflicts">1<' in html


def test_profiles_with_over_half_their_mailboxes_failing_are_flagged(
    admin: Any, org: Any, profile: Any, now: datetime
) -> None:
    calm = make_profile(org, "Calm")
    boxes = [queue_mailbox(org, profile, f"m{i}") for i in range(3)]
    calm_boxes = [queue_mailbox(org, calm, f"c{i}") for i in range(2)]
    for mailbox in boxes[:2]:
        finished_run(mailbox, now - timedelta(minutes=30), RunStatus.FAILED)
    finished_run(calm_boxes[0], now - timedelta(minutes=5), RunStatus.FAILED)  # one of two: not over half
    finished_run(calm_boxes[1], now - timedelta(minutes=90), RunStatus.FAILED)  # over an hour ago
    response = client_for(admin).get("/monitoring/")
    [flagged] = response.context["profiles"]
    assert (flagged, flagged.n_failing, flagged.n_mailboxes, flagged.failing_percent) == (profile, 2, 3, 67)
    assert "2 of 3 (67 %)" in response.content.decode()


# Bounded queries, access


def test_the_page_makes_the_same_few_queries_for_6_or_60_mailboxes(
    admin: Any, org: Any, profile: Any, alice: Any, django_assert_max_num_queries: Any, rq_queues: str
) -> None:
    from tests.crm.test_views import make_record

    now = timezone.now()
    client = client_for(admin)

    def fill(suffix: str) -> None:
        for mailbox in in_each_state(org, profile, now, suffix).values():
            finished_run(mailbox, now - timedelta(minutes=3), RunStatus.FAILED)
            finished_run(mailbox, now - timedelta(hours=30))
            ItemLink.objects.create(
                mailbox=mailbox,
                record_type="task",
                crm_id=make_record("task", org, alice).pk,
                state=LinkState.QUARANTINED,
            )
            make_conflict(mailbox, make_record("contact", org, alice))

    fill("-a")
    client.get("/monitoring/")  # the session, the memberships: as on any page
    with django_assert_max_num_queries(20) as few:
        client.get("/monitoring/")
    for i in range(9):
        fill(f"-{i}")
    assert Mailbox.objects.count() == 60
    with django_assert_max_num_queries(len(few)) as many:
        response = client.get("/monitoring/")
    assert len(many) == len(few)
    assert response.context["counts"]["failing"] == 20


def test_only_administrators_see_the_page(approver: Any, auditor: Any, alice: Any, client: Any) -> None:
    for user in (approver, auditor, alice):
        assert client_for(user).get("/monitoring/").status_code == 403
    assert client.get("/monitoring/").url.startswith("/login/")


def test_the_menu_links_the_page_for_administrators_only(admin: Any, approver: Any) -> None:
    assert 'href="/monitoring/"' in client_for(admin).get("/dashboard/").content.decode().split("</nav>")[0]
    assert 'href="/monitoring/"' not in client_for(approver).get("/approvals/").content.decode()


def test_an_untested_mailbox_is_never_tested_not_failing(org: Any, profile: Any, now: datetime) -> None:
    queue_mailbox(org, profile, "untested", test_overall=TestStatus.NOT_RUN, consecutive_failures=3)
    assert count_by_state(Mailbox.objects.all(), now)["never_tested"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_state_follows_the_runs_of_a_mailbox_syncing_with_a_server(mailbox: Mailbox, sim: Any) -> None:
    from tests.syncjobs.conftest import sync

    def state() -> str:
        counts = count_by_state(Mailbox.objects.all(), timezone.now())
        [(found, n)] = [(s, n) for s, n in counts.items() if n]
        return found

    assert state() == "syncing"  # tested and enabled: the first run is to come
    assert sync(mailbox).status == RunStatus.SUCCEEDED
    assert state() == "syncing"
    sim.control.add_fault("*", http_status=503)
    assert sync(mailbox).error_kind == ErrorKind.TRANSIENT
    assert state() == "failing"
    sim.control.clear_faults()
    assert sync(mailbox).status == RunStatus.SUCCEEDED
    assert state() == "syncing"
    mailbox.profile.password = "wrong"
    mailbox.profile.save()
    assert sync(mailbox).error_kind == ErrorKind.PERMANENT
    assert state() == "failing"
