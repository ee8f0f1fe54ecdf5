"""Pulling: GET /api/v1/changes and /api/v1/offline (clients/feed.py)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.log import Actor
from clients import feed
from clients.models import ClientInstance, OfflineFilter
from crm.directions import SYNC_FIELDS
from crm.models import Appointment, Contact, SyncFilter, Task
from mailboxes.models import Organization

pytestmark = pytest.mark.django_db

T = datetime.datetime(2026, 5, 4, 9, 0, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)


def contact(org: Organization, owner: Any, last_name: str = "Doe", **fields: Any) -> Contact:
    return Contact.objects.create(organization=org, owner=owner, last_name=last_name, **fields)


def appointment(org: Organization, owner: Any, start: datetime.datetime, **fields: Any) -> Appointment:
    values = {"subject": "Review", "end": start + datetime.timedelta(hours=1), **fields}
    return Appointment.objects.create(organization=org, owner=owner, start=start, **values)


def task(org: Organization, owner: Any, subject: str = "Call back", **fields: Any) -> Task:
    return Task.objects.create(organization=org, owner=owner, subject=subject, **fields)


def stamp(record: Any, at: datetime.datetime) -> None:
    """Give a record the updated_at a transaction gave it, whenever that committed."""
    type(record).all_objects.filter(pk=record.pk).update(updated_at=at)


def ids(changes: list[dict[str, Any]]) -> set[str]:
    return {c["id"] for c in changes}


def pull(
    instance: ClientInstance, cursor: str = "", at: datetime.datetime = T, limit: int = 500, which: str = "changes"
) -> tuple[list[dict[str, Any]], str]:
    return feed.pull(instance, which, cursor, limit, now=at)


# Who may pull


def test_only_the_sync_instance_may_pull(alice_desktop: Any) -> None:
    _instance, api = alice_desktop

    for path in ("/api/v1/changes", "/api/v1/offline"):
        response = api.get(path)
        assert response.status_code == 409
        assert "not the synchronizing one" in response.json()["error"]


# What a pull sends


def test_the_first_pull_sends_what_the_filters_select_in_the_agreed_shape(
    alice: Any, bob: Any, org: Organization, alice_sync: Any
) -> None:
    _instance, api = alice_sync
    mine = contact(org, alice, "Smith", first_name="Ann", email="ann@example.com")
    meeting = appointment(org, alice, timezone.now() + datetime.timedelta(days=1), attendees=["ann@example.com"])
    todo = task(org, alice, due=datetime.date(2026, 6, 1))
    contact(org, bob, "Bob's")  # another owner's
    contact(org, alice, "Inactive", is_active=False)  # outside alice's contact filter
    task(org, alice, "Done", status="completed")  # outside alice's task filter

    response = api.get("/api/v1/changes")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"changes", "cursor"}
    by_id = {c["id"]: c for c in body["changes"]}
    assert set(by_id) == {str(mine.pk), str(meeting.pk), str(todo.pk)}
    for change in body["changes"]:
        assert set(change) == {"type", "id", "version", "deleted", "fields"}
        assert set(change["fields"]) == set(SYNC_FIELDS[change["type"]])
        assert change["deleted"] is False
    assert by_id[str(mine.pk)]["type"] == "contact"
    assert by_id[str(mine.pk)]["fields"]["first_name"] == "Ann"
    assert by_id[str(mine.pk)]["version"] == 1
    assert by_id[str(meeting.pk)]["fields"]["start"].endswith("Z")
    assert by_id[str(meeting.pk)]["fields"]["attendees"] == ["ann@example.com"]
    assert by_id[str(todo.pk)]["fields"]["due"] == "2026-06-01"


def test_a_pull_sends_what_changed_since_the_cursor(alice: Any, org: Organization, alice_sync: Any) -> None:
    instance, _api = alice_sync
    old, changed = contact(org, alice, "Old"), contact(org, alice, "Changed")
    stamp(old, T - 10 * MINUTE)
    stamp(changed, T - 10 * MINUTE)
    _changes, cursor = pull(instance, at=T)

    changed.job_title = "CEO"
    changed.save()
    stamp(changed, T + 5 * MINUTE)
    changes, cursor = pull(instance, cursor, at=T + 10 * MINUTE)

    assert [(c["id"], c["version"], c["fields"]["job_title"]) for c in changes] == [(str(changed.pk), 2, "CEO")]
    assert pull(instance, cursor, at=T + 20 * MINUTE)[0] == []


def test_a_change_committed_behind_the_cursor_is_not_lost(alice: Any, org: Organization, alice_sync: Any) -> None:
    """The classic cursor bug: a record stamped before a pull's newest change but committed after the pull."""
    instance, _api = alice_sync
    first = contact(org, alice, "First")
    stamp(first, T - 10 * 1000 * datetime.timedelta(microseconds=1))  # just before the pull
    changes, cursor = pull(instance, at=T)
    assert ids(changes) == {str(first.pk)}

    # Stamped 30 s before that pull (earlier than the newest change it sent), committed after it.
    late = contact(org, alice, "Late")
    stamp(late, T - 30 * datetime.timedelta(seconds=1))
    changes, _cursor = pull(instance, cursor, at=T + 15 * MINUTE)

    assert str(late.pk) in ids(changes)


def test_recent_changes_come_again_and_the_client_keeps_the_higher_version(
    alice: Any, org: Organization, alice_sync: Any
) -> None:
    instance, _api = alice_sync
    recent = contact(org, alice, "Recent")
    stamp(recent, T - 20 * datetime.timedelta(seconds=1))
    _changes, cursor = pull(instance, at=T)

    again, _cursor = pull(instance, cursor, at=T + 2 * MINUTE)

    assert [(c["id"], c["version"]) for c in again] == [(str(recent.pk), 1)]


# Deletes


def test_records_that_leave_the_filters_come_as_deleted(
    alice: Any, bob: Any, org: Organization, alice_sync: Any
) -> None:
    instance, _api = alice_sync
    inactive, deleted, given_away = contact(org, alice, "A"), contact(org, alice, "B"), contact(org, alice, "C")
    done = task(org, alice)
    _changes, cursor = pull(instance, at=timezone.now())

    inactive.is_active = False
    inactive.save()
    deleted.delete()
    given_away.owner = bob
    given_away.save()
    done.status = "completed"
    done.save()
    changes, _cursor = pull(instance, cursor, at=timezone.now() + MINUTE)

    assert {(c["id"], c["deleted"], c["fields"]) for c in changes} == {
        (str(inactive.pk), True, None),
        (str(deleted.pk), True, None),
        (str(given_away.pk), True, None),
        (str(done.pk), True, None),
    }
    versions = {c["id"]: c["version"] for c in changes}
    assert versions[str(deleted.pk)] == 2


def test_records_the_client_never_had_make_no_deletes(alice: Any, bob: Any, org: Organization, alice_sync: Any) -> None:
    instance, _api = alice_sync
    _changes, cursor = pull(instance, at=timezone.now())

    contact(org, alice, "Never active", is_active=False)
    contact(org, bob, "Bob's").delete()
    changes, _cursor = pull(instance, cursor, at=timezone.now() + MINUTE)

    assert changes == []


def test_a_filter_change_reconciles_records_that_did_not_change(alice: Any, org: Organization, alice_sync: Any) -> None:
    instance, _api = alice_sync
    ceo, clerk = contact(org, alice, "Ceo", job_title="CEO"), contact(org, alice, "Clerk", job_title="Clerk")
    stamp(ceo, T - 10 * MINUTE)
    stamp(clerk, T - 10 * MINUTE)
    _changes, cursor = pull(instance, at=T)
    assert pull(instance, cursor, at=T + 10 * MINUTE)[0] == []

    sync_filter = SyncFilter.objects.get(user=alice, record_type="contact")
    sync_filter.rules["rules"].append({"field": "job_title", "operator": "eq", "value": "CEO"})
    sync_filter.save()
    changes, cursor = pull(instance, cursor, at=T + 20 * MINUTE)

    assert {(c["id"], c["deleted"]) for c in changes if c["type"] == "contact"} == {
        (str(ceo.pk), False),
        (str(clerk.pk), True),
    }
    assert [c for c in pull(instance, cursor, at=T + 30 * MINUTE)[0] if c["type"] == "contact"] == []


def test_a_filter_relative_to_today_reconciles_when_the_day_changes(
    alice: Any, org: Organization, alice_sync: Any
) -> None:
    """alice's appointment filter: start on or after today - 30 days."""
    instance, _api = alice_sync
    now = timezone.now()
    meeting = appointment(org, alice, now - datetime.timedelta(days=29))
    changes, cursor = pull(instance, at=now)
    assert str(meeting.pk) in ids(changes)

    changes, _cursor = pull(instance, cursor, at=now + datetime.timedelta(days=2))

    assert [(c["id"], c["deleted"]) for c in changes] == [(str(meeting.pk), True)]


def test_an_empty_cursor_starts_over(alice: Any, org: Organization, alice_sync: Any) -> None:
    instance, _api = alice_sync
    record = contact(org, alice)
    pull(instance, at=T)

    changes, _cursor = pull(instance, "", at=T + 10 * MINUTE)

    assert ids(changes) == {str(record.pk)}


# Pages and cursors


def test_pages_hold_at_most_limit_changes_and_lose_none(alice: Any, org: Organization, alice_sync: Any) -> None:
    """Records of all three types with the same updated_at: the keyset (updated_at, type, id) pages through them."""
    instance, _api = alice_sync
    records = [contact(org, alice, f"C{n}") for n in range(4)] + [task(org, alice, f"T{n}") for n in range(3)]
    records.append(appointment(org, alice, timezone.now()))
    for record in records:
        stamp(record, T - 5 * MINUTE)

    seen: list[str] = []
    cursor = ""
    for _page in range(10):
        changes, cursor = pull(instance, cursor, at=T, limit=3)
        seen += [c["id"] for c in changes]
        if len(changes) < 3:
            break

    assert sorted(seen) == sorted(str(r.pk) for r in records)
    assert len(seen) == len(set(seen))


def test_a_page_through_the_api_takes_a_limit(alice: Any, org: Organization, alice_sync: Any) -> None:
    _instance, api = alice_sync
    for n in range(3):
        contact(org, alice, f"C{n}")

    first = api.get("/api/v1/changes", limit=2).json()
    second = api.get("/api/v1/changes", limit=2, cursor=first["cursor"]).json()

    assert len(first["changes"]) == 2
    assert len(ids(first["changes"]) | ids(second["changes"])) == 3


@pytest.mark.parametrize("limit", ["0", "501", "x", "-1"])
def test_a_bad_limit_is_a_400(alice_sync: Any, limit: str) -> None:
    _instance, api = alice_sync

    response = api.get("/api/v1/changes", limit=limit)

    assert response.status_code == 400
    assert "limit" in response.json()["error"]


def test_a_tampered_or_foreign_cursor_is_a_400(alice: Any, bob: Any, org: Organization, alice_sync: Any) -> None:
    instance, api = alice_sync
    cursor = api.get("/api/v1/changes").json()["cursor"]
    from tests.clients.conftest import register

    bob_instance, _token = register(bob, org)
    _changes, bob_cursor = pull(bob_instance)
    _changes, offline_cursor = pull(instance, which="offline")

    for bad in (cursor[:-3] + "abc", bob_cursor, offline_cursor, "garbage"):
        response = api.get("/api/v1/changes", cursor=bad)
        assert response.status_code == 400
        assert "cursor" in response.json()["error"]


def test_a_pull_costs_the_same_queries_for_3_or_300_changes(alice: Any, org: Organization, alice_sync: Any) -> None:
    instance, _api = alice_sync
    counts = []
    for n in (3, 300):
        Contact.objects.bulk_create([Contact(organization=org, owner=alice, last_name=f"C{n}-{i}") for i in range(n)])
        with CaptureQueriesContext(connection) as queries:
            changes, _cursor = pull(instance, at=timezone.now())
        assert len(changes) >= n
        counts.append(len(queries))

    assert counts[0] == counts[1]
    assert counts[1] <= 8


# Offline


def test_offline_uses_the_sync_filters_when_the_user_has_no_offline_filter(
    alice: Any, org: Organization, alice_sync: Any
) -> None:
    instance, api = alice_sync
    open_task, done = task(org, alice), task(org, alice, "Done", status="completed")

    body = api.get("/api/v1/offline").json()

    assert set(body) == {"changes", "cursor"}
    assert str(open_task.pk) in ids(body["changes"])
    assert str(done.pk) not in ids(body["changes"])


def test_offline_uses_the_offline_filters(alice: Any, org: Organization, alice_sync: Any) -> None:
    instance, _api = alice_sync
    open_task, done = task(org, alice), task(org, alice, "Done", status="completed")
    mine = contact(org, alice)
    rules = {"match": "all", "rules": [{"field": "owner", "operator": "is_me", "value": None}]}
    OfflineFilter(organization=org, user=alice, record_type="task", name="All my tasks", rules=rules).save_audited(
        Actor.system("tests")
    )

    changes, cursor = pull(instance, which="offline")

    # Every task of alice's; no contacts: she has offline filters, none for contacts.
    assert ids(changes) == {str(open_task.pk), str(done.pk)}
    assert str(mine.pk) not in ids(changes)
    # The changes feed is separate: it still follows the sync filters.
    assert str(done.pk) not in ids(pull(instance)[0])
