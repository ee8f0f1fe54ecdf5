"""A mailbox that syncs against a real EWS simulator: the fixtures of the engine's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crm.filters import ensure_default_filters
from ewsim.testing import RunningSimulator, running_simulator
from mailboxes.models import Mailbox, TestStatus
from syncjobs.engine import run_sync
from syncjobs.jobs import enqueue_sync
from syncjobs.models import SyncRun, Trigger
from tests.conftest import make_mailbox, make_profile

ALICE = "alice@example.com"
SERVICE = "svc@example.com"


@pytest.fixture(scope="session")
def simulator() -> Iterator[RunningSimulator]:
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator: RunningSimulator) -> Iterator[RunningSimulator]:
    simulator.control.reset()
    simulator.control.create_mailbox(SERVICE, "svc-pw", can_impersonate=True)
    simulator.control.create_mailbox(ALICE, "alice-pw")
    yield simulator
    simulator.control.clear_faults()


def ready(mailbox: Mailbox) -> Mailbox:
    """Approved, tested and enabled for appointments, contacts and tasks."""
    mailbox.approval_status = "approved"
    mailbox.test_act = mailbox.test_overall = TestStatus.SUCCESS
    mailbox.enabled_act = True
    mailbox.save()
    return mailbox


@pytest.fixture
def mailbox(org: Any, alice: Any, sim: RunningSimulator, system: Any) -> Mailbox:
    profile = make_profile(org, "Simulator", ews_url=sim.ews_url, username=SERVICE, password="svc-pw")
    ensure_default_filters(alice, org, system)
    return ready(make_mailbox(org, alice, ALICE, profile))


def sync(mailbox: Mailbox, **kwargs: Any) -> SyncRun:
    """One run, in this process, through the same code as the RQ job."""
    run = enqueue_sync(mailbox, trigger=Trigger.MANUAL, **kwargs)
    done = run_sync(run.pk)
    assert done is not None, "the run was not claimed"
    return done


def items(sim: RunningSimulator, folder: str) -> list[dict]:
    return sim.control.items(ALICE, folder)


def operations(sim: RunningSimulator) -> list[str]:
    return [r["operation"] for r in sim.control.requests()]


def mailbox_values(mailbox: Mailbox, folder: str) -> list[dict]:
    """What the mailbox holds, read back through the backend as canonical values."""
    from syncjobs.backends import backend_for

    backend = backend_for(mailbox)
    try:
        ids = [c.item_id for c in backend.sync_folder(folder, "").changes]
        return [{**i.values, "id": i.item_id, "crm_id": i.crm_id} for i in backend.get_items(folder, ids)]
    finally:
        backend.close()
