"""The JSON control interface, and several clients at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from exchangelib import UTC, Account, CalendarItem, EWSDateTime, Task

from ewsim.client import ControlError
from ewsim.testing import RunningSimulator

from .conftest import ALICE, BOB, AccountFactory


def test_mailbox_lifecycle(sim: RunningSimulator) -> None:
    created = sim.control.create_mailbox("carol@example.com", "pw", display_name="Carol")
    assert created == {"address": "carol@example.com", "can_impersonate": False, "display_name": "Carol"}
    assert "carol@example.com" in {m["address"] for m in sim.control.mailboxes()}
    assert "password" not in sim.control.mailboxes()[0]
    with pytest.raises(ControlError) as dup:
        sim.control.create_mailbox("Carol@Example.com", "pw")
    assert dup.value.status == 409
    sim.control.delete_mailbox("carol@example.com")
    assert "carol@example.com" not in {m["address"] for m in sim.control.mailboxes()}
    with pytest.raises(ControlError) as gone:
        sim.control.delete_mailbox("carol@example.com")
    assert gone.value.status == 404


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "invalid JSON"),
        (b'{"address": "x@example.com"}', "required"),
        (b'["list"]', "JSON object"),
    ],
)
def test_bad_mailbox_requests_are_400(sim: RunningSimulator, body: bytes, reason: str) -> None:
    resp = requests.post(sim.url + "/_ewsim/mailboxes", data=body, timeout=10)
    assert resp.status_code == 400
    assert reason in resp.json()["error"]


@pytest.mark.parametrize(
    "spec",
    [
        {"operation": "CreateItem"},
        {"operation": "CreateItem", "error": "ErrorServerBusy", "http_status": 503},
        {"operation": "CreateItem", "http_status": 200},
        {"operation": "CreateItem", "error": "Busy"},
        {"error": "ErrorServerBusy"},
        {"operation": "CreateItem", "delay_ms": -1},
    ],
)
def test_bad_fault_specs_are_400(sim: RunningSimulator, spec: dict) -> None:
    resp = requests.post(sim.url + "/_ewsim/faults", json=spec, timeout=10)
    assert resp.status_code == 400


def test_seeded_items_are_visible_over_ews(sim: RunningSimulator, alice: Account) -> None:
    seeded = sim.control.add_item(
        ALICE,
        "calendar",
        {
            "subject": "Dentist",
            "start": "2024-06-01T08:00:00Z",
            "end": "2024-06-01T09:00:00Z",
            "location": "Town",
            "categories": ["Private"],
            "extended_properties": [
                {
                    "property_set_id": "8b4e2a51-5c1e-4d7c-9a37-2f6d2a0c9e11",
                    "property_name": "CrmId",
                    "property_type": "String",
                    "value": "crm-1",
                }
            ],
        },
    )
    assert seeded["type"] == "CalendarItem" and seeded["location"] == "Town"
    [item] = list(alice.calendar.all())
    assert (item.id, item.subject, item.location, item.categories, item.crm_id) == (
        seeded["id"],
        "Dentist",
        "Town",
        ["Private"],
        "crm-1",
    )
    sim.control.add_item(ALICE, "contacts", {"display_name": "Zed", "given_name": "Z", "email": "z@example.org"})
    [contact] = list(alice.contacts.all())
    assert [e.email for e in contact.email_addresses] == ["z@example.org"]


def test_user_edits_and_deletes_through_control(sim: RunningSimulator, alice: Account) -> None:
    task = Task(account=alice, folder=alice.tasks, subject="before")
    task.save()
    edited = sim.control.update_item(task.id, {"subject": "edited by the user"})
    assert edited["changekey"] != task.changekey
    assert alice.tasks.get(id=task.id).subject == "edited by the user"
    assert sim.control.get_item(task.id)["subject"] == "edited by the user"
    sim.control.delete_item(task.id)
    assert alice.tasks.all().count() == 0
    with pytest.raises(ControlError) as missing:
        sim.control.get_item(task.id)
    assert missing.value.status == 404


def test_items_listing_errors(sim: RunningSimulator) -> None:
    for path in ("mailboxes/nobody@example.com/folders/inbox/items", f"mailboxes/{ALICE}/folders/nowhere/items"):
        with pytest.raises(ControlError) as err:
            sim.control.request("GET", path)
        assert err.value.status == 404
    with pytest.raises(ControlError) as err:
        sim.control.add_item(ALICE, "inbox", {"type": "Spaceship"})
    assert err.value.status == 400


def test_request_log_and_reset(sim: RunningSimulator, alice: Account) -> None:
    sim.control.clear_requests()
    alice.tasks.all().count()
    log = sim.control.requests()
    assert {r["operation"] for r in log} >= {"FindItem"}
    entry = log[-1]
    assert (entry["mailbox"], entry["http_status"], entry["response_code"]) == (ALICE, 200, "NoError")
    assert entry["time"].endswith("Z")
    sim.control.clear_requests()
    assert sim.control.requests() == []
    sim.control.reset()
    assert sim.control.mailboxes() == []


def test_concurrent_clients_lose_no_items(make_account: AccountFactory, sim: RunningSimulator) -> None:
    """Two accounts (and threads within each) create items at the same time."""
    accounts = {ALICE: make_account(ALICE), BOB: make_account(BOB)}
    for account in accounts.values():
        _ = account.calendar  # resolve folders up front
    start = threading.Barrier(8)

    def worker(n: int) -> int:
        account = accounts[ALICE if n % 2 else BOB]
        start.wait(timeout=30)
        made = 0
        for i in range(25):
            CalendarItem(
                account=account,
                folder=account.calendar,
                subject=f"w{n}-{i}",
                start=EWSDateTime(2024, 1, 1, 9, tzinfo=UTC),
                end=EWSDateTime(2024, 1, 1, 10, tzinfo=UTC),
            ).save()
            made += 1
        return made

    with ThreadPoolExecutor(max_workers=8) as pool:
        made = sum(pool.map(worker, range(8)))
    assert made == 200
    for address, account in accounts.items():
        subjects = [i["subject"] for i in sim.control.items(address, "calendar")]
        expected = {f"w{n}-{i}" for n in range(8) for i in range(25) if (n % 2 == 1) == (address == ALICE)}
        assert len(subjects) == 100 and set(subjects) == expected
        assert account.calendar.all().count() == 100


def test_folder_listing_and_items_by_folder_name(sim: RunningSimulator, alice: Account) -> None:
    from exchangelib import Folder

    sub = Folder(parent=alice.inbox, name="Projects")
    sub.save()
    folders = {f["name"]: f for f in sim.control.folders(ALICE)}
    assert folders["Inbox"]["distinguished"] == "inbox"
    assert folders["Projects"]["parent_id"] == folders["Inbox"]["id"]
    sim.control.add_item(ALICE, "Projects", {"subject": "by name"})
    sim.control.add_item(ALICE, folders["Projects"]["id"], {"subject": "by id"})
    assert sorted(m.subject for m in sub.all()) == ["by id", "by name"]
