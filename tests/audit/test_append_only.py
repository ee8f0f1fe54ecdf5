"""Every path that used to change or remove audit events is closed: the ORM's (refused in
Python) and plain SQL's (refused by the database's triggers), on SQLite and PostgreSQL."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from audit import chain
from audit.archive import verify_database
from audit.log import Actor, record
from audit.models import AppendOnlyError, AuditAnchor, AuditEvent
from mailboxes.models import Membership, Organization, Role
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(org: Organization, system: Actor) -> AuditEvent:
    return record(system, "organization.tested", org, changes={"name": ["a", "b"]}, organization=org)


def stored(event: AuditEvent) -> tuple[Any, ...]:
    return AuditEvent.objects.filter(pk=event.pk).values_list("actor_id", "actor_name", "action", "hash").get()


def refused_sql(sql: str, params: list[Any] | None = None) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


# The ORM ---------------------------------------------------------------------------------------


def test_bulk_create_refuses_to_update_on_conflict(event: AuditEvent) -> None:
    before = stored(event)
    forged = AuditEvent(id=event.id, actor_name="mallory", action="organization.forged", object_repr="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create(
            [forged], update_conflicts=True, unique_fields=["id"], update_fields=["actor_name", "action"]
        )
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create([forged], ignore_conflicts=True)
    assert stored(event) == before


def test_bulk_create_chains_the_new_events(event: AuditEvent, org: Organization) -> None:
    new = [AuditEvent(actor_name="tests", action="organization.tested", object_repr=f"{n}") for n in range(3)]
    created = AuditEvent.objects.bulk_create(new)
    assert [e.seq for e in created] == [event.seq + 1, event.seq + 2, event.seq + 3]
    assert created[0].prev_hash == event.hash
    assert verify_database().ok


def test_the_base_manager_cannot_update_or_delete(event: AuditEvent) -> None:
    before = stored(event)
    with pytest.raises(AppendOnlyError):
        AuditEvent._base_manager.filter(pk=event.pk).update(action="organization.forged")
    with pytest.raises(AppendOnlyError):
        AuditEvent._base_manager.all().delete()
    assert stored(event) == before


def test_private_queryset_updates_and_deletes_are_refused(event: AuditEvent) -> None:
    before = stored(event)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk)._update({"action": "organization.forged"})
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk)._raw_delete(connection.alias)
    event.action = "organization.forged"
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["action"])
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update_or_create(pk=event.pk, defaults={"action": "organization.forged"})
    assert stored(event) == before


def test_objects_create_chains_too(event: AuditEvent) -> None:
    created = AuditEvent.objects.create(actor_name="tests", action="organization.tested", object_repr="x")
    assert (created.seq, created.prev_hash) == (event.seq + 1, event.hash)
    assert created.hash == chain.digest(created.chain_fields())
    # Chain fields passed in are replaced: the chain decides them.
    forged = AuditEvent.objects.create(seq=1, prev_hash="f" * 64, hash="f" * 64, actor_name="x", object_repr="x")
    assert (forged.seq, forged.prev_hash) == (created.seq + 1, created.hash)
    assert verify_database().ok


# Plain SQL: the triggers -----------------------------------------------------------------------


def test_the_database_refuses_update(event: AuditEvent) -> None:
    refused_sql("UPDATE audit_auditevent SET actor_name = %s", ["mallory"])
    assert stored(event)[1] == "tests"


def test_the_database_refuses_delete(event: AuditEvent) -> None:
    refused_sql("DELETE FROM audit_auditevent WHERE seq = %s", [event.seq])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_database_refuses_changes_to_the_prune_anchors() -> None:
    anchor = AuditAnchor.objects.create(
        first_seq=1,
        prev_hash=chain.GENESIS,
        seq=1,
        hash="a" * 64,
        count=1,
        before=timezone.now(),
        archive_name="a.jsonl.gz",
        archive_sha256="b" * 64,
        pruned_by="tests",
    )
    with pytest.raises(AppendOnlyError):
        anchor.delete()
    with pytest.raises(AppendOnlyError):
        AuditAnchor.objects.update(hash="")
    refused_sql("UPDATE audit_auditanchor SET hash = ''")
    refused_sql("DELETE FROM audit_auditanchor")
    assert AuditAnchor.objects.get().hash == "a" * 64


COLUMNS = (
    "id, seq, time, actor_id, actor_name, ip, action, object_type, object_id, object_repr, "
    "organization_id, organization_name, changes, prev_hash, hash"
)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="INSERT OR REPLACE is SQLite's")
def test_sqlite_refuses_insert_or_replace(event: AuditEvent) -> None:
    """REPLACE deletes the row it replaces without firing DELETE triggers: an insert of an id or a
    seq that is there already is refused on its own."""
    rewritten = COLUMNS.replace("actor_name", "'mallory'")
    refused_sql(
        f"INSERT OR REPLACE INTO audit_auditevent ({COLUMNS}) SELECT {rewritten} FROM audit_auditevent WHERE seq = %s",
        [event.seq],
    )
    refused_sql(  # another id at the same seq
        f"INSERT OR REPLACE INTO audit_auditevent ({COLUMNS}) "
        f"SELECT {rewritten.replace('id, seq', "'0123456789abcdef0123456789abcdef', seq", 1)} "
        "FROM audit_auditevent WHERE seq = %s",
        [event.seq],
    )
    assert stored(event)[1] == "tests"
    anchor = AuditAnchor.objects.create(
        first_seq=1,
        prev_hash=chain.GENESIS,
        seq=1,
        hash="a" * 64,
        count=1,
        before=timezone.now(),
        archive_name="a.jsonl.gz",
        archive_sha256="b" * 64,
        pruned_by="tests",
    )
    refused_sql(
        "REPLACE INTO audit_auditanchor (id, first_seq, prev_hash, seq, hash, count, before, archive_name, "
        "archive_sha256, pruned_by, time) VALUES (%s, 1, '', 1, '', 1, '2020-01-01', 'a', 'b', 'c', '2020-01-01')",
        [anchor.pk],
    )
    assert AuditAnchor.objects.get().hash == "a" * 64


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no TRUNCATE")
def test_postgresql_refuses_truncate(event: AuditEvent) -> None:
    refused_sql("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_deletion_is_allowed_in_maintenance_only_in_its_own_transaction(event: AuditEvent) -> None:
    with transaction.atomic():
        with chain.maintenance(connection.alias, "test"), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent")
        assert not AuditEvent.objects.exists()
        transaction.set_rollback(True)
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    # The flag is gone with the transaction: the next delete is refused again.
    refused_sql("DELETE FROM audit_auditevent")


def maintenance_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {chain.MAINTENANCE_TABLE}")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_maintenance_is_refused_outside_a_transaction(event: AuditEvent) -> None:
    """Outside a transaction its flag would be committed at once: DELETE allowed to everyone."""
    with pytest.raises(TransactionManagementError, match="inside transaction.atomic"):
        with chain.maintenance(connection.alias, "oops"):
            pass
    assert maintenance_rows() == 0
    refused_sql("DELETE FROM audit_auditevent")


@pytest.mark.django_db(transaction=True)
def test_an_error_in_maintenance_leaves_no_flag_even_when_caught(event: AuditEvent) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        with chain.maintenance(connection.alias, "boom"):
            raise RuntimeError("boom")
    assert maintenance_rows() == 0
    with transaction.atomic():
        try:
            with chain.maintenance(connection.alias, "caught"), connection.cursor() as cursor:
                cursor.execute("DELETE FROM audit_auditevent")
                raise RuntimeError("caught below")
        except RuntimeError:
            pass  # the transaction is rolled back all the same: the flag and the delete with it
    assert maintenance_rows() == 0
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    refused_sql("DELETE FROM audit_auditevent")


def test_audit_verify_reports_a_maintenance_flag_left_behind(event: AuditEvent) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {chain.MAINTENANCE_TABLE} (reason) VALUES ('left behind')")
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", stdout=StringIO())
    assert str(failure.value) == (
        "audit_maintenance holds 1 committed row(s) (left behind): while it does, the triggers let anyone "
        "delete audit events. Remove them with DELETE FROM audit_maintenance (as the tables' owner)."
    )


def test_flush_empties_the_audit_tables(event: AuditEvent) -> None:
    # Django's flush (which the test suite runs between transactional tests) is maintenance.
    call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
    assert not AuditEvent.objects.exists()


# Deleting users and organizations ---------------------------------------------------------------


def test_deleting_a_user_leaves_the_events_as_recorded(org: Organization) -> None:
    dora = make_user("dora")
    event = record(Actor(user=dora), "organization.tested", org, organization=org)
    before = stored(event)
    assert before[0] == dora.pk

    dora.delete()

    assert stored(event) == before
    assert AuditEvent.objects.get(pk=event.pk).actor is None
    assert verify_database().ok


def membership_events(user: Any) -> list[tuple[str, str, str]]:
    events = AuditEvent.objects.filter(object_type="mailboxes.membership", action="membership.deleted")
    return [(e.actor_name, e.object_repr, e.organization_name) for e in events.filter(object_repr__startswith=user)]


def test_deleting_a_user_in_the_admin_records_the_user_and_the_memberships_removed(
    org: Organization, other_org: Organization, system: Actor
) -> None:
    staff = make_user("root", is_staff=True, is_superuser=True)
    dora = make_user("dora")
    Membership.add(system, dora, org, Role.USER)
    Membership.add(system, dora, other_org, Role.APPROVER)

    response = client_for(staff).post(f"/django-admin/auth/user/{dora.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Membership.objects.filter(user_id=dora.pk).exists()
    assert sorted(membership_events("dora")) == [
        ("root", "dora in Acme (User)", "Acme"),
        ("root", "dora in Globex (Approver)", "Globex"),
    ]
    # Once in each of her organizations: their auditors see it.
    deleted = AuditEvent.objects.filter(action="user.deleted").order_by("organization_name")
    assert [(e.actor_name, e.object_repr, e.object_id, e.organization_id) for e in deleted] == [
        ("root", "dora", str(dora.pk), org.pk),
        ("root", "dora", str(dora.pk), other_org.pk),
    ]
    assert verify_database().ok


def test_an_auditor_sees_the_deletion_of_a_user_of_their_organization(
    org: Organization, other_org: Organization, system: Actor, auditor: Any
) -> None:
    dora, eve = make_user("dora"), make_user("eve")
    Membership.add(system, dora, org, Role.USER)
    Membership.add(system, eve, other_org, Role.USER)
    dora.delete()
    eve.delete()
    page = client_for(auditor).get("/audit/", {"action": "user.deleted"}).context["page"]
    assert [event.object_repr for event in page.object_list] == ["dora"]


def test_a_user_of_no_organization_is_recorded_deleted_once(db: Any) -> None:
    dora = make_user("dora")
    dora.delete()
    [deleted] = AuditEvent.objects.filter(action="user.deleted")
    assert (deleted.object_repr, deleted.organization_id) == ("dora", None)


def test_deleting_a_user_outside_the_admin_records_the_memberships_by_the_system(
    org: Organization, system: Actor
) -> None:
    dora = make_user("dora")
    Membership.add(system, dora, org, Role.USER)
    dora.delete()
    assert membership_events("dora") == [("system", "dora in Acme (User)", "Acme")]


def test_deleting_an_organization_in_the_admin_records_it_and_its_memberships(system: Actor) -> None:
    staff = make_user("root", is_staff=True, is_superuser=True)
    initech = Organization.objects.create(name="Initech")
    Membership.add(system, make_user("dora"), initech, Role.ADMINISTRATOR)

    response = client_for(staff).post(f"/django-admin/mailboxes/organization/{initech.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Organization.objects.filter(pk=initech.pk).exists()
    [deleted] = AuditEvent.objects.filter(action="organization.deleted", object_id=str(initech.pk))
    assert deleted.actor_name == "root"
    assert membership_events("dora") == [("root", "dora in Initech (Administrator)", "Initech")]
    assert verify_database().ok
