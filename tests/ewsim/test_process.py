"""`python -m ewsim` as a real process: --help, --seed, and --data surviving a restart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchangelib import BASIC, DELEGATE, Account, Configuration, Credentials, FailFast, Task, Version
from exchangelib.version import EXCHANGE_2016

from ewsim.client import Control

REPO = Path(__file__).resolve().parents[2]


class Process:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ewsim", "--port", "0", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The banner names the port picked; readiness is then confirmed by polling the control interface.
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"(http://[\d.]+:\d+)/EWS", line)
        if not match:
            self.stop()
            raise RuntimeError(f"ewsim did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = match.group(1)
        self.control = Control(self.url)
        self.control.wait_ready()

    def account(self, address: str, password: str) -> Account:
        config = Configuration(
            service_endpoint=self.url + "/EWS/Exchange.asmx",
            credentials=Credentials(address, password),
            auth_type=BASIC,
            version=Version(build=EXCHANGE_2016),
            retry_policy=FailFast(),
        )
        return Account(primary_smtp_address=address, config=config, autodiscover=False, access_type=DELEGATE)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop()


def test_help_documents_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ewsim", "--help"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for option in ("--host", "--port", "--data", "--seed", "--max-body", "--log-level"):
        assert option in out


def test_data_file_keeps_state_across_restart(tmp_path: Path, processes: list[Process]) -> None:
    data = str(tmp_path / "ewsim.sqlite3")
    first = Process("--data", data)
    processes.append(first)
    first.control.create_mailbox("dora@example.com", "pw")
    account = first.account("dora@example.com", "pw")
    task = Task(account=account, folder=account.tasks, subject="remember me", crm_id="crm-9")
    task.save()
    changes = list(account.tasks.sync_items())
    assert len(changes) == 1
    state = account.tasks.item_sync_state
    first.stop()

    second = Process("--data", data)
    processes.append(second)
    assert [m["address"] for m in second.control.mailboxes()] == ["dora@example.com"]
    again = second.account("dora@example.com", "pw")
    [item] = list(again.tasks.filter(crm_id="crm-9"))
    assert (item.id, item.changekey, item.subject) == (task.id, task.changekey, "remember me")
    # the sync state from before the restart still works
    assert list(again.tasks.sync_items(sync_state=state)) == []
    Task(account=again, folder=again.tasks, subject="after restart").save()
    assert [(k, i.subject) for k, i in again.tasks.sync_items(sync_state=state, only_fields=["subject"])] == [
        ("create", "after restart")
    ]


def test_seed_file_creates_mailboxes_and_items(tmp_path: Path, processes: list[Process]) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "mailboxes": [
                    {"address": "sales@example.com", "password": "pw"},
                    {"address": "svc@example.com", "password": "pw", "can_impersonate": True},
                ],
                "items": [
                    {
                        "mailbox": "sales@example.com",
                        "folder": "contacts",
                        "display_name": "Ann Customer",
                        "email": "ann@customer.test",
                    }
                ],
            }
        )
    )
    proc = Process("--seed", str(seed))
    processes.append(proc)
    assert {m["address"]: m["can_impersonate"] for m in proc.control.mailboxes()} == {
        "sales@example.com": False,
        "svc@example.com": True,
    }
    account = proc.account("sales@example.com", "pw")
    assert [c.display_name for c in account.contacts.all()] == ["Ann Customer"]
