"""Extended properties, categories, FindItem restrictions, sorting and paging."""

from __future__ import annotations

import pytest
from exchangelib import UTC, Account, CalendarItem, Contact, EWSDateTime, Message, Q, Task

from ewsim.testing import RunningSimulator

from .conftest import ALICE


def dt(hour: int, day: int = 1) -> EWSDateTime:
    return EWSDateTime(2024, 5, day, hour, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "cls, folder_attr, extra",
    [
        (CalendarItem, "calendar", {"start": dt(9), "end": dt(10)}),
        (Contact, "contacts", {"display_name": "Someone"}),
        (Task, "tasks", {}),
        (Message, "drafts", {}),
    ],
)
def test_extended_property_stamp_lookup_and_update(alice: Account, cls: type, folder_attr: str, extra: dict) -> None:
    folder = getattr(alice, folder_attr)
    cls(account=alice, folder=folder, subject="other", crm_id="crm-0", **extra).save()
    item = cls(account=alice, folder=folder, subject="mine", crm_id="crm-42", crm_revision=3, **extra)
    item.save()
    found = list(folder.filter(crm_id="crm-42"))
    assert [(f.id, f.crm_id, f.crm_revision) for f in found] == [(item.id, "crm-42", 3)]
    found[0].crm_revision = 4
    found[0].save(update_fields=["crm_revision"])
    assert folder.get(id=item.id).crm_revision == 4
    found[0].crm_id = None
    found[0].save(update_fields=["crm_id"])
    assert folder.filter(crm_id="crm-42").count() == 0
    assert folder.get(id=item.id).crm_id is None


def test_extended_property_shows_in_control_interface(alice: Account, sim: RunningSimulator) -> None:
    CalendarItem(
        account=alice, folder=alice.calendar, subject="x", start=dt(9), end=dt(10), crm_id="crm-7", categories=["CRM"]
    ).save()
    [entry] = sim.control.items(ALICE, "calendar")
    assert entry["categories"] == ["CRM"]
    assert {
        "uri": {
            "PropertySetId": "8b4e2a51-5c1e-4d7c-9a37-2f6d2a0c9e11",
            "PropertyName": "CrmId",
            "PropertyType": "String",
        },
        "value": "crm-7",
    } in entry["extended_properties"]


def test_filters_on_subject_categories_dates_and_integers(alice: Account) -> None:
    for i in range(6):
        CalendarItem(
            account=alice,
            folder=alice.calendar,
            subject=f"Meeting {i}",
            start=dt(8 + i),
            end=dt(9 + i),
            categories=["even"] if i % 2 == 0 else ["odd"],
            crm_revision=i,
        ).save()
    cal = alice.calendar

    def subjects(qs: object) -> list[str]:
        return sorted(i.subject for i in qs)  # type: ignore[attr-defined]

    assert subjects(cal.filter(subject="Meeting 3")) == ["Meeting 3"]
    assert subjects(cal.filter(subject="meeting 3")) == ["Meeting 3"]  # EWS compares text case-insensitively
    assert len(subjects(cal.exclude(subject="Meeting 3"))) == 5
    assert subjects(cal.filter(start__gte=dt(12))) == ["Meeting 4", "Meeting 5"]
    assert subjects(cal.filter(start__lt=dt(9))) == ["Meeting 0"]
    assert subjects(cal.filter(end__gt=dt(12), end__lte=dt(13))) == ["Meeting 4"]
    assert subjects(cal.filter(categories__contains=["odd"])) == ["Meeting 1", "Meeting 3", "Meeting 5"]
    assert subjects(cal.filter(crm_revision__gt=3)) == ["Meeting 4", "Meeting 5"]
    assert subjects(cal.filter(subject__contains="ting 2")) == ["Meeting 2"]
    assert subjects(cal.filter(subject__icontains="MEETING 1")) == ["Meeting 1"]
    assert subjects(cal.filter(subject__startswith="Meet")) == [f"Meeting {i}" for i in range(6)]
    assert subjects(cal.filter(Q(subject="Meeting 1") | Q(subject="Meeting 2"))) == ["Meeting 1", "Meeting 2"]
    assert subjects(cal.filter(~Q(categories__contains=["odd"]) & Q(start__gt=dt(9)))) == ["Meeting 2", "Meeting 4"]
    assert subjects(cal.filter(subject__in=["Meeting 0", "Meeting 5"])) == ["Meeting 0", "Meeting 5"]
    assert cal.filter(crm_id__exists=True).count() == 0
    assert cal.filter(location__exists=False).count() == 6


def test_order_by_and_values(alice: Account) -> None:
    for i in (3, 1, 2):
        Task(account=alice, folder=alice.tasks, subject=f"T{i}").save()
    assert list(alice.tasks.all().order_by("subject").values_list("subject", flat=True)) == ["T1", "T2", "T3"]
    assert list(alice.tasks.all().order_by("-subject").values_list("subject", flat=True)) == ["T3", "T2", "T1"]


def test_find_item_paging(alice: Account, sim: RunningSimulator) -> None:
    alice.bulk_create(folder=alice.tasks, items=[Task(subject=f"p{i:03d}") for i in range(230)])
    sim.control.clear_requests()
    qs = alice.tasks.all().only("subject")
    qs.page_size = 50
    subjects = [t.subject for t in qs]
    assert sorted(subjects) == [f"p{i:03d}" for i in range(230)]
    assert len(set(subjects)) == 230
    finds = [r for r in sim.control.requests() if r["operation"] == "FindItem"]
    assert len(finds) == 5  # 50+50+50+50+30
    # slicing asks for one page at an offset
    assert [t.subject for t in alice.tasks.all().order_by("subject")[100:103]] == ["p100", "p101", "p102"]
    assert alice.tasks.all().count() == 230


def test_calendar_view_returns_overlapping_items(alice: Account) -> None:
    CalendarItem(account=alice, folder=alice.calendar, subject="early", start=dt(8), end=dt(9)).save()
    CalendarItem(account=alice, folder=alice.calendar, subject="late", start=dt(15), end=dt(16)).save()
    assert [i.subject for i in alice.calendar.view(start=dt(8, 1), end=dt(12, 1))] == ["early"]


def test_boolean_and_time_extended_properties(alice: Account) -> None:
    from exchangelib import ExtendedProperty

    class Synced(ExtendedProperty):
        property_set_id = "8b4e2a51-5c1e-4d7c-9a37-2f6d2a0c9e11"
        property_name = "Synced"
        property_type = "Boolean"

    class SyncedAt(ExtendedProperty):
        property_set_id = "8b4e2a51-5c1e-4d7c-9a37-2f6d2a0c9e11"
        property_name = "SyncedAt"
        property_type = "SystemTime"

    Task.register("synced", Synced)
    Task.register("synced_at", SyncedAt)
    try:
        Task(account=alice, folder=alice.tasks, subject="yes", synced=True, synced_at=dt(10)).save()
        Task(account=alice, folder=alice.tasks, subject="no", synced=False, synced_at=dt(12)).save()
        assert [t.subject for t in alice.tasks.filter(synced=True)] == ["yes"]
        assert [t.subject for t in alice.tasks.filter(synced_at__gt=dt(11))] == ["no"]
        got = alice.tasks.get(subject="yes")
        assert (got.synced, got.synced_at) == (True, dt(10))
    finally:
        Task.deregister("synced")
        Task.deregister("synced_at")


def test_query_string_searches_subject_and_body(alice: Account) -> None:
    Message(account=alice, folder=alice.inbox, subject="Quarterly report", body="numbers").save()
    Message(account=alice, folder=alice.inbox, subject="Lunch", body="the report is late").save()
    Message(account=alice, folder=alice.inbox, subject="Other", body="nothing").save()
    assert sorted(m.subject for m in alice.inbox.filter("report")) == ["Lunch", "Quarterly report"]
