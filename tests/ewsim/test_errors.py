"""Errors a real server gives: conflicts, auth, impersonation, injected faults, malformed and huge requests."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from exchangelib import BASIC, Account, Configuration, Credentials, FaultTolerance, Task, Version
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorInternalServerError,
    ErrorInvalidSyncStateData,
    ErrorIrresolvableConflict,
    ErrorNonExistentMailbox,
    ErrorSchemaValidation,
    ErrorServerBusy,
    UnauthorizedError,
)
from exchangelib.version import EXCHANGE_2016

from ewsim.model import new_id
from ewsim.testing import RunningSimulator

from .conftest import ALICE, BOB, PASSWORD, SERVICE, AccountFactory, soap_post


def test_stale_changekey_with_never_overwrite_conflicts(alice: Account) -> None:
    task = Task(account=alice, folder=alice.tasks, subject="v1")
    task.save()
    stale = alice.tasks.get(id=task.id)
    task.subject = "v2"
    task.save(update_fields=["subject"])
    stale.subject = "v3"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution="NeverOverwrite")
    assert alice.tasks.get(id=task.id).subject == "v2"
    stale.save(update_fields=["subject"], conflict_resolution="AlwaysOverwrite")
    assert alice.tasks.get(id=task.id).subject == "v3"


def test_bad_password_is_401(make_account: AccountFactory, sim: RunningSimulator) -> None:
    account = make_account(ALICE, password="wrong")
    with pytest.raises(UnauthorizedError):
        account.inbox.all().count()
    resp = requests.post(sim.ews_url, data=b"<x/>", timeout=10)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert [r["http_status"] for r in sim.control.requests()][-1] == 401


def test_delegate_access_to_someone_elses_mailbox_is_denied(make_account: AccountFactory) -> None:
    snoop = make_account(BOB, user=ALICE)  # alice's credentials, bob's mailbox, no impersonation
    with pytest.raises(ErrorAccessDenied):
        snoop.tasks.all().count()


def test_item_of_another_mailbox_is_denied(alice: Account, bob: Account) -> None:
    task = Task(account=bob, folder=bob.tasks, subject="bob's")
    task.save()
    with pytest.raises(ErrorAccessDenied):
        next(alice.fetch(ids=[(task.id, task.changekey)]))


def test_impersonation_allowed_for_service_account(make_account: AccountFactory, bob: Account) -> None:
    as_bob = make_account(BOB, user=SERVICE, impersonate=True)
    Task(account=as_bob, folder=as_bob.tasks, subject="made by the service").save()
    assert [t.subject for t in bob.tasks.all()] == ["made by the service"]


def test_impersonation_denied_without_the_right(make_account: AccountFactory) -> None:
    as_bob = make_account(BOB, user=ALICE, impersonate=True)
    with pytest.raises(ErrorImpersonateUserDenied):
        as_bob.tasks.all().count()


def test_impersonating_an_unknown_mailbox(make_account: AccountFactory) -> None:
    ghost = make_account("nobody@example.com", user=SERVICE, impersonate=True)
    with pytest.raises(ErrorNonExistentMailbox):
        ghost.tasks.all().count()


def test_injected_server_busy_carries_back_off(alice: Account, sim: RunningSimulator) -> None:
    _ = alice.tasks  # resolve the folder before arming the fault
    sim.control.add_fault("CreateItem", error="ErrorServerBusy", back_off_ms=2500)
    with pytest.raises(ErrorServerBusy) as info:
        Task(account=alice, folder=alice.tasks, subject="x").save()
    assert info.value.back_off == 2.5
    Task(account=alice, folder=alice.tasks, subject="y").save()  # count=1: the next one works
    assert [t.subject for t in alice.tasks.all()] == ["y"]
    log = [r for r in sim.control.requests() if r["operation"] == "CreateItem"]
    assert [(r["http_status"], r["response_code"]) for r in log] == [(500, "ErrorServerBusy"), (200, "NoError")]


def test_exchangelib_retries_after_the_back_off(make_account: AccountFactory, sim: RunningSimulator) -> None:
    patient = make_account(ALICE, retry_policy=FaultTolerance(max_wait=10))
    _ = patient.tasks
    sim.control.add_fault("CreateItem", error="ErrorServerBusy", back_off_ms=100)
    Task(account=patient, folder=patient.tasks, subject="eventually").save()
    codes = [r["response_code"] for r in sim.control.requests() if r["operation"] == "CreateItem"]
    assert codes == ["ErrorServerBusy", "NoError"]


@pytest.mark.parametrize("status", [503, 500])
def test_injected_http_errors(alice: Account, sim: RunningSimulator, status: int) -> None:
    _ = alice.tasks
    sim.control.add_fault("FindItem", http_status=status, count=2, mailbox=ALICE)
    # exchangelib treats both as transient and, failing fast, raises ErrorServerBusy
    for _ in range(2):
        with pytest.raises(ErrorServerBusy, match="ErrorInternalServerTransientError"):
            alice.tasks.all().count()
    assert alice.tasks.all().count() == 0
    assert [r["http_status"] for r in sim.control.requests() if r["operation"] == "FindItem"] == [status, status, 200]


def test_injected_error_only_hits_the_named_mailbox(alice: Account, bob: Account, sim: RunningSimulator) -> None:
    _ = alice.tasks, bob.tasks
    sim.control.add_fault("FindItem", mailbox=BOB, error="ErrorInternalServerError")
    assert alice.tasks.all().count() == 0
    with pytest.raises(ErrorInternalServerError):
        bob.tasks.all().count()


def test_injected_delay(alice: Account, sim: RunningSimulator) -> None:
    _ = alice.tasks
    sim.control.add_fault("FindItem", delay_ms=300)
    started = time.monotonic()
    assert alice.tasks.all().count() == 0  # answered normally, just late
    assert time.monotonic() - started >= 0.3  # a lower bound only: the server slept at least this long
    assert sim.control.request("GET", "faults") == []  # count=1: used up, so the next request is not delayed
    [delayed] = [r for r in sim.control.requests() if r["operation"] == "FindItem"]
    assert delayed["duration_ms"] >= 300 and delayed["response_code"] == "NoError"


def test_fault_list_and_clear(sim: RunningSimulator) -> None:
    sim.control.add_fault("GetItem", count=3, error="ErrorServerBusy")
    assert sim.control.request("GET", "faults") == [{"operation": "GetItem", "count": 3, "error": "ErrorServerBusy"}]
    sim.control.clear_faults()
    assert sim.control.request("GET", "faults") == []


def test_hierarchy_sync_with_bad_state(alice: Account) -> None:
    with pytest.raises(ErrorInvalidSyncStateData):
        list(alice.root.sync_hierarchy(sync_state="bm9wZQ==.abc"))


def test_malformed_xml_is_a_soap_fault_and_the_server_lives_on(sim: RunningSimulator, alice: Account) -> None:
    for body in (
        b"<not-closed",
        b"\xff\xfe garbage",
        b"<a>no envelope</a>",
        b"",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    ):
        resp = requests.post(sim.ews_url, data=body, auth=(ALICE, PASSWORD), timeout=10)
        assert resp.status_code == 500
        assert b"ErrorSchemaValidation" in resp.content
        assert b"root:" not in resp.content
    status, body = soap_post(sim, ALICE, "<m:Frobnicate/>")
    assert status == 500 and b"ErrorInvalidOperation" in body and b"Frobnicate" in body
    for item_id, code in (("nope", b"ErrorInvalidIdMalformed"), (new_id(), b"ErrorItemNotFound")):
        status, body = soap_post(
            sim,
            ALICE,
            "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
            f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>',
        )
        assert status == 200 and code in body
    assert alice.tasks.all().count() == 0  # still serving


def test_schema_fault_reaches_exchangelib_as_its_exception(sim: RunningSimulator) -> None:
    from exchangelib.services.common import EWSService
    from lxml import etree

    resp = requests.post(sim.ews_url, data=b"<broken", auth=(ALICE, PASSWORD), timeout=10)
    fault = etree.fromstring(resp.content).find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0]
    with pytest.raises(ErrorSchemaValidation):
        EWSService._raise_soap_errors(fault)


def test_oversized_request_is_refused(sim: RunningSimulator, alice: Account) -> None:
    limit = sim.server.simulator.max_body
    with socket.create_connection(sim.server.server_address[:2], timeout=10) as sock:
        sock.sendall(
            b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
    assert alice.tasks.all().count() == 0  # still serving


def test_wrong_http_usage(sim: RunningSimulator) -> None:
    assert requests.get(sim.ews_url, timeout=10).status_code == 405
    assert requests.get(sim.url + "/nothing-here", timeout=10).status_code == 404


def test_bad_credentials_with_exchangelib_config_is_unauthorized(sim: RunningSimulator) -> None:
    from exchangelib import DELEGATE, FailFast

    config = Configuration(
        service_endpoint=sim.ews_url,
        credentials=Credentials("nobody@example.com", "x"),
        auth_type=BASIC,
        version=Version(build=EXCHANGE_2016),
        retry_policy=FailFast(),
    )
    account = Account(
        primary_smtp_address="nobody@example.com", config=config, autodiscover=False, access_type=DELEGATE
    )
    with pytest.raises(UnauthorizedError):
        account.root.refresh()


def test_dtd_in_an_envelope_is_refused(sim: RunningSimulator) -> None:
    body = (
        '<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x "boom">]>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><s:Body>'
        "<m:FindFolder>&x;</m:FindFolder></s:Body></s:Envelope>"
    )
    resp = requests.post(sim.ews_url, data=body.encode(), auth=(ALICE, PASSWORD), timeout=10)
    assert resp.status_code == 500 and b"ErrorSchemaValidation" in resp.content


@pytest.mark.parametrize("max_changes", [0, 513])
def test_max_changes_returned_out_of_range(sim: RunningSimulator, max_changes: int) -> None:
    status, body = soap_post(
        sim,
        ALICE,
        "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>"
        '</m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="tasks"/></m:SyncFolderId>'
        f"<m:MaxChangesReturned>{max_changes}</m:MaxChangesReturned></m:SyncFolderItems>",
    )
    assert status == 200
    assert b"<m:ResponseCode>ErrorInvalidArgument</m:ResponseCode>" in body
    assert b"<m:SyncState/>" in body  # error messages keep the element exchangelib reads first


def test_more_than_512_through_exchangelib(alice: Account) -> None:
    from exchangelib.errors import ErrorInvalidArgument

    with pytest.raises(ErrorInvalidArgument):
        list(alice.tasks.sync_items(max_changes_returned=513))
