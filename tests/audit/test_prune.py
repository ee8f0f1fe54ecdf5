"""Retention: audit_prune archives a prefix of the chain and removes it, leaving an anchor;
audit_verify goes on from the anchor and checks the archives."""

from __future__ import annotations

import datetime
import gzip
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.utils import timezone

from audit import chain
from audit.archive import ROW_FIELDS
from audit.log import Actor
from audit.models import AuditAnchor, AuditEvent
from mailboxes.models import Membership, Role
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def days_ago(days: float) -> datetime.datetime:
    return NOW - datetime.timedelta(days=days)


def event(days: float, name: str = "tests") -> AuditEvent:
    return AuditEvent.objects.create(
        time=days_ago(days),
        actor_name=name,
        action="organization.tested",
        object_type="mailboxes.organization",
        object_id="1",
        object_repr="Acme",
        changes={"day": [None, days]},
    )


@pytest.fixture
def history() -> list[AuditEvent]:
    """Ten events, one a day from 100 days ago."""
    return [event(days) for days in range(100, 90, -1)]


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def prune(before: datetime.datetime | str, archive_dir: Path) -> str:
    date = before if isinstance(before, str) else before.isoformat()
    return run("audit_prune", "--before", date, "--archive-dir", str(archive_dir), "--by", "ops")


def refused(command: str, *args: str) -> str:
    with pytest.raises(CommandError) as failure:
        run(command, *args)
    return str(failure.value)


def test_prune_archives_and_removes_the_old_events(history: list[AuditEvent], tmp_path: Path) -> None:
    output = prune(days_ago(95.5), tmp_path)

    archive = tmp_path / "audit-000000000001-000000000005.jsonl.gz"
    assert output.startswith(f"Pruned 5 events (seq 1-5) into {archive} (SHA-256 ")
    lines = [json.loads(line) for line in gzip.open(archive, "rt")]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert list(lines[0]) == list(ROW_FIELDS)
    assert lines[4]["hash"] == history[4].hash
    assert lines[0]["changes"] == {"day": [None, 100]}

    anchor = AuditAnchor.objects.get()
    assert (anchor.first_seq, anchor.prev_hash, anchor.seq, anchor.hash, anchor.count) == (
        1,
        chain.GENESIS,
        5,
        history[4].hash,
        5,
    )
    assert (anchor.archive_name, anchor.pruned_by) == (archive.name, "ops")
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [6, 7, 8, 9, 10, 11]

    pruned = AuditEvent.objects.get(action="audit.pruned")
    assert (pruned.seq, pruned.prev_hash, pruned.actor_name) == (11, history[-1].hash, "ops")
    assert (pruned.object_type, pruned.object_id) == ("audit.auditanchor", str(anchor.pk))
    assert pruned.changes["count"] == [None, 5]
    assert pruned.changes["archive_sha256"] == [None, anchor.archive_sha256]


def test_the_prune_is_recorded_in_each_organization_whose_events_it_removed(
    tmp_path: Path, org: Any, other_org: Any
) -> None:
    for organization in (org, other_org, org, None):
        AuditEvent.objects.create(
            time=days_ago(99),
            actor_name="tests",
            action="organization.tested",
            object_type="mailboxes.organization",
            object_id=str(getattr(organization, "pk", "0")),
            object_repr=str(organization),
            organization_id=getattr(organization, "pk", None),
            organization_name=str(organization or ""),
        )
    prune(days_ago(90.5), tmp_path)
    pruned = AuditEvent.objects.filter(action="audit.pruned").order_by("organization_name")
    assert [(e.organization_id, e.organization_name) for e in pruned] == [(org.pk, "Acme"), (other_org.pk, "Globex")]
    assert len({e.object_id for e in pruned}) == 1  # one prune
    assert "Audit log OK" in run("audit_verify")
    auditor = make_user("auditor")
    Membership.add(Actor.system(), auditor, org, Role.AUDITOR)
    page = client_for(auditor).get("/audit/", {"action": "audit.pruned"}).context["page"]
    assert [event.organization_id for event in page.object_list] == [org.pk]


def test_an_expected_head_pruned_since_is_checked_against_the_anchor(history: list[AuditEvent], tmp_path: Path) -> None:
    head = f"{history[-1].seq}:{history[-1].hash}"
    prune(days_ago(90.5), tmp_path)  # every event of the history: the anchor ends at the head
    assert f"Expected head: seq {history[-1].seq} (pruned into " in run("audit_verify", "--expect-head", head)
    wrong = f"{history[-1].seq}:{'e' * 64}"
    assert "the log was rewritten" in refused("audit_verify", "--expect-head", wrong)
    middle = f"{history[3].seq}:{history[3].hash}"
    assert "was pruned into audit-000000000001-000000000010.jsonl.gz: check it with --archive" in run(
        "audit_verify", "--expect-head", middle
    )


def test_verify_passes_after_a_prune_and_checks_the_archive(history: list[AuditEvent], tmp_path: Path) -> None:
    prune(days_ago(95.5), tmp_path)
    archive = tmp_path / "audit-000000000001-000000000005.jsonl.gz"

    output = run("audit_verify", "--archive", str(archive))

    head = AuditEvent.objects.order_by("-seq").first()
    assert output == (
        f"Audit log OK: 6 events (seq 6-11); head 11:{head.hash}\n"
        f"Archive {archive} OK: 5 events (seq 1-5), ends at the prune's anchor; last hash {history[4].hash}\n"
    )


def test_a_second_prune_goes_on_from_the_first(history: list[AuditEvent], tmp_path: Path) -> None:
    prune(days_ago(97.5), tmp_path)
    prune(days_ago(92.5), tmp_path)

    first, second = AuditAnchor.objects.order_by("seq")
    assert (first.first_seq, first.seq, second.first_seq, second.seq) == (1, 3, 4, 8)
    assert second.prev_hash == first.hash
    # The first prune's own event (seq 11) is newer than the date: it stays.
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [9, 10, 11, 12]
    archives = [str(tmp_path / anchor.archive_name) for anchor in (first, second)]
    output = run("audit_verify", "--archive", archives[0], "--archive", archives[1])
    assert output.count(" OK: ") == 3


def test_prune_takes_a_prefix_of_the_chain(history: list[AuditEvent], tmp_path: Path) -> None:
    late = event(99)  # written after the others but dated 99 days ago: seq 11
    prune(days_ago(95.5), tmp_path)
    assert AuditAnchor.objects.get().seq == 5
    assert AuditEvent.objects.filter(pk=late.pk).exists()
    assert "Audit log OK" in run("audit_verify")


def test_prune_refuses_a_date_in_the_future(history: list[AuditEvent], tmp_path: Path) -> None:
    tomorrow = (timezone.localdate() + datetime.timedelta(days=2)).isoformat()
    message = refused("audit_prune", "--before", tomorrow, "--archive-dir", str(tmp_path))
    assert "is in the future: only events of the past are pruned" in message
    assert AuditEvent.objects.count() == 10
    assert list(tmp_path.iterdir()) == []


def test_prune_refuses_when_nothing_is_that_old(history: list[AuditEvent], tmp_path: Path) -> None:
    date = days_ago(200).date().isoformat()
    message = refused("audit_prune", "--before", date, "--archive-dir", str(tmp_path))
    assert message == f"No audit events before {date} 00:00: nothing to prune."
    assert AuditEvent.objects.count() == 10


def test_prune_refuses_a_date_it_cannot_read(tmp_path: Path) -> None:
    message = refused("audit_prune", "--before", "last tuesday", "--archive-dir", str(tmp_path))
    assert message == "--before 'last tuesday' is not a date: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM."


def test_prune_writes_to_the_archive_dir_setting_by_default(
    history: list[AuditEvent], tmp_path: Path, settings: Any
) -> None:
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"
    run("audit_prune", "--before", days_ago(99.5).isoformat())
    assert [p.name for p in (tmp_path / "archives").iterdir()] == ["audit-000000000001-000000000001.jsonl.gz"]


def test_a_broken_chain_is_not_pruned(history: list[AuditEvent], tmp_path: Path) -> None:
    with connection.cursor() as cursor:
        drop = {
            "postgresql": "DROP TRIGGER audit_auditevent_append_only ON audit_auditevent",
            "sqlite": "DROP TRIGGER audit_auditevent_no_update",
        }
        cursor.execute(drop[connection.vendor])
        cursor.execute("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 3")

    message = refused("audit_prune", "--before", days_ago(95.5).isoformat(), "--archive-dir", str(tmp_path))

    assert message == (
        f"The audit chain is broken at seq 3 (event id {history[2].pk}): content changed: the event's hash "
        "does not match its content. Nothing was pruned; run manage.py audit_verify."
    )
    assert AuditEvent.objects.count() == 10
    assert list(tmp_path.iterdir()) == []
    assert not AuditAnchor.objects.exists()


def rewrite(archive: Path, change: Any) -> None:
    lines = [json.loads(line) for line in gzip.open(archive, "rt")]
    with gzip.open(archive, "wt") as out:
        for line in change(lines):
            out.write(json.dumps(line) + "\n")


def test_verify_catches_an_edited_archive(history: list[AuditEvent], tmp_path: Path) -> None:
    prune(days_ago(95.5), tmp_path)
    archive = tmp_path / "audit-000000000001-000000000005.jsonl.gz"
    rewrite(archive, lambda lines: [{**line, "actor_name": "mallory"} if line["seq"] == 2 else line for line in lines])

    message = refused("audit_verify", "--archive", str(archive))
    assert message == f"Archive {archive} broken at seq 2 (event id {history[1].pk}): " + (
        "content changed: the event's hash does not match its content"
    )


def test_verify_catches_a_shortened_archive(history: list[AuditEvent], tmp_path: Path) -> None:
    prune(days_ago(95.5), tmp_path)
    archive = tmp_path / "audit-000000000001-000000000005.jsonl.gz"
    rewrite(archive, lambda lines: lines[:-1])

    message = refused("audit_verify", "--archive", str(archive))
    assert "the archive ends at seq 4, not at the prune's last event (seq 5)" in message
    assert "its SHA-256 is not the one recorded at the prune" in message


def test_verify_refuses_an_archive_of_no_prune(tmp_path: Path) -> None:
    archive = tmp_path / "stray.jsonl.gz"
    with gzip.open(archive, "wt") as out:
        out.write("not json\n")
    assert "cannot be read: line 1 is not JSON" in refused("audit_verify", "--archive", str(archive))


def test_an_event_slipped_into_the_pruned_range_is_caught(history: list[AuditEvent], tmp_path: Path) -> None:
    prune(days_ago(95.5), tmp_path)
    forged = AuditEvent(actor_name="mallory", action="organization.tested", object_repr="Acme", object_type="x")
    forged.link(3, history[1].hash)
    models.Model.save(forged, force_insert=True)

    assert refused("audit_verify") == (
        f"Audit log broken at seq 3 (event id {forged.pk}): inserted event: seq 3 is before the chain's next (6)"
    )


def test_a_tampered_anchor_is_caught(history: list[AuditEvent], tmp_path: Path) -> None:
    prune(days_ago(95.5), tmp_path)
    with connection.cursor() as cursor:
        drop = {
            "postgresql": "DROP TRIGGER audit_auditanchor_append_only ON audit_auditanchor",
            "sqlite": "DROP TRIGGER audit_auditanchor_no_update",
        }
        cursor.execute(drop[connection.vendor])
        cursor.execute("UPDATE audit_auditanchor SET hash = %s", ["f" * 64])
    assert "prev_hash mismatch" in refused("audit_verify")
