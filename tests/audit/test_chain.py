"""The hash chain: each event hashes its content and its predecessor's hash; audit_verify
finds the first changed, missing or inserted event; concurrent writers keep one chain."""

from __future__ import annotations

import threading
import time
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, models, transaction

from audit import archive, chain, triggers
from audit.log import Actor, record
from audit.models import AuditEvent
from mailboxes.models import Organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(org: Organization, system: Actor) -> list[AuditEvent]:
    """Five events after the fixtures' own, oldest first."""
    before = AuditEvent.objects.count()
    for n in range(5):
        record(system, "organization.tested", org, changes={"step": [n, n + 1]}, organization=org)
    return list(AuditEvent.objects.order_by("seq"))[before:]


def verify() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def broken() -> str:
    with pytest.raises(CommandError) as failure:
        verify()
    return str(failure.value)


def tamper(sql: str, params: list[Any]) -> None:
    """Run plain SQL with the append-only triggers dropped (the test's transaction restores them)."""
    drop = {
        "postgresql": ["DROP TRIGGER audit_auditevent_append_only ON audit_auditevent"],
        "sqlite": ["DROP TRIGGER audit_auditevent_no_update", "DROP TRIGGER audit_auditevent_no_delete"],
    }[connection.vendor]
    with connection.cursor() as cursor:
        for statement in drop:
            cursor.execute(statement)
        cursor.execute(sql, params)


def test_events_are_numbered_and_linked(events: list[AuditEvent]) -> None:
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    for previous, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == previous.hash
        assert event.hash == chain.digest(AuditEvent.objects.get(pk=event.pk).chain_fields())
    assert AuditEvent.objects.order_by("seq").first().prev_hash == chain.GENESIS
    # The newest first, by seq.
    assert AuditEvent.objects.first() == events[-1]


def test_the_hash_covers_every_field(events: list[AuditEvent]) -> None:
    fields = events[0].chain_fields()
    changed = {
        "id": "00000000-0000-0000-0000-000000000001",
        "seq": 99,
        "time": "2001-01-01T00:00:00.000000Z",
        "actor_id": "42",
        "actor_name": "mallory",
        "ip": "192.0.2.66",
        "action": "organization.forged",
        "object_type": "mailboxes.mailbox",
        "object_id": "x",
        "object_repr": "x",
        "organization_id": "00000000-0000-0000-0000-000000000002",
        "organization_name": "Globex",
        "changes": {"step": [0, 2]},
        "prev_hash": "f" * 64,
    }
    assert set(changed) == set(chain.FIELDS) == set(fields)
    for name, value in changed.items():
        assert chain.digest({**fields, name: value}) != events[0].hash, name


def test_audit_verify_passes_on_an_intact_chain(events: list[AuditEvent]) -> None:
    count = AuditEvent.objects.count()
    assert verify() == f"Audit log OK: {count} events (seq 1-{count}); head {count}:{events[-1].hash}\n"


def printed_head(output: str) -> str:
    """The head as audit_verify prints it, to be pasted back with --expect-head."""
    return output.split("; head ")[1].split()[0]


def test_the_printed_head_passes_when_pasted_back(events: list[AuditEvent], system: Actor, org: Organization) -> None:
    head = printed_head(verify())
    record(system, "organization.tested", org, organization=org)  # the log grows meanwhile
    out = StringIO()
    call_command("audit_verify", "--expect-head", head, stdout=out)
    assert f"Expected head: seq {events[-1].seq} has the expected hash" in out.getvalue()


def test_removing_the_newest_events_is_caught_with_the_expected_head(events: list[AuditEvent]) -> None:
    head = printed_head(verify())
    # Cut off the newest event: what is left is an intact chain.
    with chain.maintenance(connection.alias, "tampering"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq])
    assert "Audit log OK" in verify()
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", "--expect-head", head, stdout=StringIO())
    assert str(failure.value) == (
        f"Expected head not found: the chain ends at seq {events[-2].seq}, before the expected head "
        f"(seq {events[-1].seq}): events {events[-1].seq}-{events[-1].seq} or more were removed"
    )


def test_a_rewritten_newest_event_is_caught_with_the_expected_head(
    events: list[AuditEvent], system: Actor, org: Organization
) -> None:
    head = printed_head(verify())
    with chain.maintenance(connection.alias, "tampering"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq])
    forged = record(Actor.system("mallory"), "organization.tested", org, organization=org)  # takes the same seq
    assert forged.seq == events[-1].seq
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", "--expect-head", head, stdout=StringIO())
    assert f"seq {forged.seq} has hash {forged.hash}, not the expected head's {events[-1].hash}" in str(failure.value)


@pytest.mark.parametrize("head", ["12", "x:" + "a" * 64, "3:" + "a" * 63, "3:" + "g" * 64, "1" * 19 + ":" + "a" * 64])
def test_the_expected_head_must_be_seq_and_hash(events: list[AuditEvent], head: str) -> None:
    with pytest.raises(CommandError, match="is not SEQ:HASH as audit_verify prints the head"):
        call_command("audit_verify", "--expect-head", head, stdout=StringIO())


def test_audit_verify_walks_in_chunks(events: list[AuditEvent], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "CHUNK", 2)
    assert "Audit log OK" in verify()
    tamper("UPDATE audit_auditevent SET object_repr = %s WHERE seq = %s", ["Forged", events[3].seq])
    assert f"seq {events[3].seq} (event id {events[3].pk}): content changed" in broken()


def test_an_edited_event_is_caught(events: list[AuditEvent]) -> None:
    tamper("UPDATE audit_auditevent SET actor_name = %s WHERE seq = %s", ["mallory", events[2].seq])
    first, dropped = broken().splitlines()
    assert first == f"Audit log broken at seq {events[2].seq} (event id {events[2].pk}): " + (
        "content changed: the event's hash does not match its content"
    )
    assert dropped.startswith("The append-only triggers are missing or disabled: audit_auditevent_")


def test_migrate_puts_back_triggers_that_are_gone(events: list[AuditEvent]) -> None:
    tamper("SELECT 1", [])  # drops the triggers
    assert triggers.missing(connection)
    call_command("migrate", verbosity=0)
    assert triggers.missing(connection) == []
    assert "Audit log OK" in verify()


def test_a_deleted_event_is_caught(events: list[AuditEvent]) -> None:
    with chain.maintenance(connection.alias, "test"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = %s", [events[2].seq])
    message = broken()
    assert f"seq {events[3].seq} (event id {events[3].pk}): missing event: seq {events[2].seq} (deleted)" in message


def test_an_inserted_event_is_caught(events: list[AuditEvent]) -> None:
    # A well-formed event with a correct hash, slipped in after events[1] at the chain's end.
    forged = AuditEvent(actor_name="mallory", action="organization.tested", object_repr="Acme", object_type="x")
    forged.link(events[-1].seq + 1, events[1].hash)
    models.Model.save(forged, force_insert=True)  # a plain INSERT, past the chain's writer

    assert broken() == (
        f"Audit log broken at seq {forged.seq} (event id {forged.pk}): "
        f"inserted event: it links to seq {events[1].seq}, not to its predecessor (seq {events[-1].seq})"
    )


def test_a_rewritten_event_with_a_new_hash_breaks_the_next_link(events: list[AuditEvent]) -> None:
    rewritten = AuditEvent.objects.get(pk=events[2].pk)
    fields = {**rewritten.chain_fields(), "actor_name": "mallory"}
    tamper(
        "UPDATE audit_auditevent SET actor_name = %s, hash = %s WHERE seq = %s",
        ["mallory", chain.digest(fields), rewritten.seq],
    )
    assert f"seq {events[3].seq} (event id {events[3].pk}): prev_hash mismatch" in broken()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_chain(org: Organization) -> None:
    """Threads, each with its own database connection, record at the same time."""
    writers, each = 4, 15
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                record(Actor.system(f"writer {n}"), "organization.tested", org, changes={"i": [None, i]})
        except BaseException as error:  # reported by the test thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    before = AuditEvent.objects.count()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert AuditEvent.objects.count() == before + writers * each
    result = archive.verify_database()
    assert result.ok, result.failure
    assert (result.walk.first_seq, result.walk.last_seq) == (1, before + writers * each)


def chain_lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's writers wait inside BEGIN IMMEDIATE")
@pytest.mark.django_db(transaction=True)
def test_a_writer_waits_for_the_chain_while_another_holds_it(org: Organization) -> None:
    """Without the lock the second writer would read the same head and fork the chain."""
    holding, release = threading.Event(), threading.Event()
    written: dict[str, AuditEvent] = {}

    def write(name: str, hold: bool) -> None:
        try:
            with transaction.atomic():
                written[name] = record(Actor.system(name), "organization.tested", org)
                if hold:
                    holding.set()
                    release.wait(timeout=30)
        finally:
            connections.close_all()

    first = threading.Thread(target=write, args=("first", True))
    second = threading.Thread(target=write, args=("second", False))
    first.start()
    assert holding.wait(timeout=30)
    second.start()
    deadline = time.monotonic() + 30
    while chain_lock_waiters() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # polls a condition: the second writer waiting for the lock
    assert chain_lock_waiters() == 1
    release.set()
    first.join()
    second.join()

    assert written["second"].seq == written["first"].seq + 1
    assert written["second"].prev_hash == written["first"].hash
    assert archive.verify_database().ok
