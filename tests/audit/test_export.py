"""The audit log's export: the filtered events as CSV or JSON lines, streamed, audited."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from audit.actions import ACTIONS
from audit.log import Actor, record
from audit.models import AuditEvent
from audit.views import EXPORT_FIELDS
from mailboxes.models import Mailbox, Membership, Organization, Role
from tests.audit.conftest import add_event
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def download(client: Any, fmt: str = "csv", **query: Any) -> tuple[Any, str]:
    response = client.get(f"/audit/export.{fmt}", query)
    assert response.status_code == 200
    assert response.streaming
    return response, b"".join(response.streaming_content).decode()


def csv_rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff")  # for spreadsheets to read UTF-8
    return list(csv.DictReader(io.StringIO(text[1:])))


def jsonl_rows(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def visible(org: Organization) -> list[AuditEvent]:
    """The organization's events before the export's own, oldest first."""
    return list(AuditEvent.objects.filter(organization_id=org.pk).exclude(action="audit.exported").order_by("seq"))


def test_the_csv_export_has_every_field_with_labels_and_codes(
    auditor: Any, events: None, org: Organization, alice_mailbox: Mailbox
) -> None:
    response, text = download(client_for(auditor))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="audit-log-{timezone.localdate():%Y-%m-%d}.csv"'
    rows = csv_rows(text)
    assert list(rows[0]) == list(EXPORT_FIELDS)
    expected = visible(org)
    assert [row["id"] for row in rows] == [str(e.pk) for e in expected]  # oldest first
    approved = next(row for row in rows if row["action"] == "mailbox.approved")
    event = AuditEvent.objects.get(pk=approved["id"])
    assert approved == {
        "seq": str(event.seq),
        "id": str(event.pk),
        "time": timezone.localtime(event.time).isoformat(),
        "actor": "acme-admin",
        "actor_id": "",
        "ip": "192.0.2.1",
        "action": "mailbox.approved",
        "action_label": "Email address approved",
        "object_type": "mailboxes.mailbox",
        "object_type_label": "Mailbox",
        "object_id": str(alice_mailbox.pk),
        "object": "alice@example.com",
        "organization_id": str(org.pk),
        "organization": "Acme",
        "changes": json.dumps(event.changes, ensure_ascii=False),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
    assert json.loads(approved["changes"])["approval_status"] == ["pending", "approved"]


def test_the_jsonl_export_has_one_object_per_event(
    auditor: Any, bobs_sync: AuditEvent, org: Organization, bob: Any
) -> None:
    response, text = download(client_for(auditor), "jsonl")

    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    rows = jsonl_rows(text)
    assert [row["seq"] for row in rows] == [e.seq for e in visible(org)]
    sync = rows[-1]
    assert list(sync) == list(EXPORT_FIELDS)
    assert sync["action"] == "mailbox.sync_requested" and sync["action_label"] == "Sync requested"
    assert sync["actor"] == "bob" and sync["actor_id"] == bob.pk
    assert sync["changes"] == {"channel": ["", "act"]}
    assert sync["ip"] is None


def test_the_export_applies_the_filter(auditor: Any, bobs_sync: AuditEvent) -> None:
    client = client_for(auditor)
    _response, text = download(client, "jsonl", action="mailbox.sync_requested", person="bob")
    assert [row["action"] for row in jsonl_rows(text)] == ["mailbox.sync_requested"]
    _response, text = download(client, action="mailbox.", q="approved")
    assert [row["action_label"] for row in csv_rows(text)] == ["Email address approved"]


def test_the_export_of_an_object_has_its_events_only(
    auditor: Any, bobs_sync: AuditEvent, alice_mailbox: Mailbox
) -> None:
    query = {"object_type": "mailboxes.mailbox", "object_id": str(alice_mailbox.pk)}
    _response, text = download(client_for(auditor), "jsonl", **query)
    assert [row["action"] for row in jsonl_rows(text)] == [
        "mailbox.approved",
        "mailbox.updated",
        "mailbox.sync_requested",
    ]


def test_the_export_never_holds_another_organizations_events(
    auditor: Any, outsider: Any, events: None, org: Organization, other_org: Organization
) -> None:
    _response, text = download(client_for(auditor), "jsonl")
    assert {row["organization"] for row in jsonl_rows(text)} == {"Acme"}
    _response, text = download(client_for(outsider), "jsonl")
    assert {row["organization"] for row in jsonl_rows(text)} == {"Globex"}
    assert "System keys rotated" not in text  # an event of no organization


def test_an_organization_the_person_does_not_read_is_a_field_error(
    auditor: Any, events: None, other_org: Organization
) -> None:
    response = client_for(auditor).get("/audit/export.csv", {"organization": str(other_org.pk)})
    assert response.status_code == 400
    assert not response.streaming
    assert "Select a valid choice" in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_a_bad_filter_gets_the_page_with_its_errors_and_no_export(auditor: Any, events: None) -> None:
    response = client_for(auditor).get("/audit/export.jsonl", {"date_from": "yesterday"})
    assert response.status_code == 400
    assert "Enter a valid date." in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_csv_cells_never_start_a_formula(auditor: Any, org: Organization) -> None:
    add_event(org, "mailbox.updated", actor_name="@evil", object_repr='=HYPERLINK("http://x","y")')
    add_event(org, "mailbox.updated", actor_name="+1", object_repr="-2+3", organization_name="\tTab")
    add_event(org, "mailbox.updated", actor_name="plain", object_repr='a=b, "quoted"\nnext line')
    client = client_for(auditor)

    _response, text = download(client, action="mailbox.updated")
    rows = csv_rows(text)
    assert [(r["actor"], r["object"]) for r in rows] == [
        ("'@evil", '\'=HYPERLINK("http://x","y")'),
        ("'+1", "'-2+3"),
        ("plain", 'a=b, "quoted"\nnext line'),
    ]
    assert rows[1]["organization"] == "'\tTab"
    # JSON lines keep the values as recorded: no spreadsheet reads them.
    _response, text = download(client, "jsonl", action="mailbox.updated")
    assert [row["actor"] for row in jsonl_rows(text)] == ["@evil", "+1", "plain"]


def test_the_export_is_audited_with_its_filter(auditor: Any, events: None, org: Organization) -> None:
    _response, text = download(client_for(auditor), action="mailbox.approved", date_from="2024-01-01")

    exported = AuditEvent.objects.get(action="audit.exported")
    assert (exported.actor_name, exported.object_type, exported.object_id) == (
        "auditor",
        "mailboxes.organization",
        str(org.pk),
    )
    assert exported.organization_id == org.pk
    assert exported.changes == {"format": "csv", "action": "mailbox.approved", "date_from": "2024-01-01"}
    assert exported.ip == "127.0.0.1"
    assert "audit.exported" not in text  # the export ends before its own event
    assert ACTIONS["audit.exported"] == "Audit log exported"


def test_an_export_of_several_organizations_is_audited_in_each(
    admin: Any, events: None, org: Organization, other_org: Organization, system: Actor
) -> None:
    Membership.add(system, admin, other_org, Role.AUDITOR)
    client = client_for(admin)

    download(client, "jsonl")
    assert set(AuditEvent.objects.filter(action="audit.exported").values_list("organization_name", flat=True)) == {
        "Acme",
        "Globex",
    }
    download(client, "jsonl", organization=str(other_org.pk))
    assert AuditEvent.objects.filter(action="audit.exported", organization_id=other_org.pk).count() == 2
    assert AuditEvent.objects.filter(action="audit.exported", organization_id=org.pk).count() == 1


def test_the_export_reads_window_by_window(
    auditor: Any, org: Organization, alice_mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each event once, in order, with one query per window of chain positions (as for a million)."""
    monkeypatch.setattr("audit.views.EXPORT_WINDOW", 4)
    for n in range(10):
        record(Actor(name="x"), "mailbox.tested", alice_mailbox, changes={"n": [None, n]}, organization=org)
    last = AuditEvent.objects.order_by("-seq")[0].seq
    client = client_for(auditor)

    with CaptureQueriesContext(connection) as queries:
        _response, text = download(client, "jsonl", action="mailbox.tested")
    rows = jsonl_rows(text)
    assert [row["changes"]["n"][1] for row in rows] == list(range(10))
    reads = [q["sql"] for q in queries if '"action" = ' in q["sql"] and "ORDER BY" in q["sql"]]
    assert len(reads) == -(-last // 4)
    assert not any("LIMIT" in sql.upper() or "OFFSET" in sql.upper() for sql in reads)


def test_labels_and_times_follow_the_request(auditor: Any, events: None, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Copenhagen"
    client = client_for(auditor)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "da"

    with translation.override(settings.LANGUAGE_CODE):  # the request activates Danish: not beyond
        _response, text = download(client, "jsonl", action="mailbox.approved")
    row = jsonl_rows(text)[0]
    with translation.override("da"):
        assert row["action_label"] == str(ACTIONS["mailbox.approved"])
    assert row["time"].endswith(("+01:00", "+02:00"))
