"""Two approvers at once, on PostgreSQL: real threads, each with its own database connection.

SQLite runs one writing transaction at a time (the settings' transaction_mode IMMEDIATE), so
two approvals cannot interleave there; these tests need PostgreSQL (DATABASE_URL), and CI runs
the suite on both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, connections, transaction

from audit.log import Actor
from audit.models import AuditEvent
from clients.models import AlreadyDecided, ClientInstance, PromotionRequest, RequestStatus
from mailboxes.models import Organization
from tests.clients.conftest import register

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="SQLite runs one writer at a time: nothing can interleave"
    ),
]


def waiting_for_locks() -> int:
    """How many other connections wait for a lock now."""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps showing its first snapshot of the statistics.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait (without a fixed sleep) until condition() holds; fail after ``seconds``."""
    done = threading.Event()
    for _ in range(int(seconds * 100)):
        if condition():
            return
        done.wait(0.01)
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname, wait_event_type, wait_event, state, query FROM pg_stat_activity")
        activity = cursor.fetchall()
    raise AssertionError(f"the other transactions never started waiting: {activity}")


def in_thread(target: Callable[[], Any], results: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        except Exception as error:  # noqa: BLE001 (the test reads what each thread ended with)
            results.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def pending(alice: Any, org: Organization) -> PromotionRequest:
    register(alice, org, "Laptop", "LAPTOP-1")
    desktop, _token = register(alice, org, "Desktop", "DESKTOP-7")
    return desktop.request_promotion(Actor(user=alice, name="alice"), "new desktop")


def test_two_concurrent_approvals_one_wins_the_other_is_told(
    pending: PromotionRequest, approver: Any, admin: Any
) -> None:
    """Both approvals start while the request row is locked, so both wait; released, one
    approves and the other, waiting on the winner's lock, finds the request approved."""
    results: list[Any] = []
    with transaction.atomic():
        PromotionRequest.objects.select_for_update().get(pk=pending.pk)
        threads = [
            in_thread(
                lambda who=who: PromotionRequest.objects.get(pk=pending.pk).approve(Actor(user=who, name=who.username)),
                results,
            )
            for who in (approver, admin)
        ]
        until(lambda: waiting_for_locks() >= 2)
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(type(r).__name__ for r in results) == ["AlreadyDecided", "NoneType"]
    (refused,) = [r for r in results if isinstance(r, AlreadyDecided)]
    assert "This request was already approved by" in str(refused)
    assert list(ClientInstance.objects.filter(is_sync_instance=True).values_list("name", flat=True)) == ["Desktop"]
    assert PromotionRequest.objects.get().status == RequestStatus.APPROVED
    assert AuditEvent.objects.filter(action="client_instance.promotion_approved").count() == 1
    assert AuditEvent.objects.filter(action="client_instance.demoted").count() == 1


def test_the_constraint_holds_even_for_writes_that_skip_the_locks(alice: Any, org: Organization) -> None:
    """Two transactions each make a different instance the sync one: the second waits on the
    first's index entry and then fails, whatever the application code did."""
    laptop, _ = register(alice, org, "Laptop", "LAPTOP-1")
    desktop, _ = register(alice, org, "Desktop", "DESKTOP-7")
    tablet, _ = register(alice, org, "Tablet", "TAB-1")
    ClientInstance.objects.filter(pk=laptop.pk).update(is_sync_instance=False)
    results: list[Any] = []

    def make_sync(pk: Any) -> int:
        with transaction.atomic():
            return ClientInstance.objects.filter(pk=pk).update(is_sync_instance=True)

    with transaction.atomic():
        ClientInstance.objects.filter(pk=desktop.pk).update(is_sync_instance=True)
        thread = in_thread(lambda: make_sync(tablet.pk), results)
        until(lambda: waiting_for_locks() >= 1)
    thread.join(timeout=30)

    assert len(results) == 1 and isinstance(results[0], IntegrityError)
    assert list(ClientInstance.objects.filter(is_sync_instance=True).values_list("name", flat=True)) == ["Desktop"]


def test_two_concurrent_promotion_requests_file_one(alice: Any, org: Organization) -> None:
    register(alice, org, "Laptop", "LAPTOP-1")
    desktop, _ = register(alice, org, "Desktop", "DESKTOP-7")
    tablet, _ = register(alice, org, "Tablet", "TAB-1")
    results: list[Any] = []

    with transaction.atomic():
        # Hold the user's instances, as an approval in progress would.
        list(ClientInstance.objects.select_for_update().filter(user=alice))
        threads = [
            in_thread(lambda i=i: i.request_promotion(Actor(user=alice, name="alice"), ""), results)
            for i in (desktop, tablet)
        ]
        until(lambda: waiting_for_locks() >= 2)
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(type(r).__name__ for r in results) == ["PromotionRequest", "RequestPending"]
    assert PromotionRequest.objects.filter(status=RequestStatus.PENDING).count() == 1
