"""The hash chain (seq, prev_hash, hash), the prune anchors, and the triggers that refuse
UPDATE and DELETE on the audit tables (audit/chain.py)."""

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import audit.models
from audit import chain, triggers

BATCH = 2000


def link_existing_events(apps, schema_editor):
    """Number the events in (time, id) order and chain them."""
    AuditEvent = apps.get_model("audit", "AuditEvent")
    db = schema_editor.connection.alias
    prev_hash, batch = chain.GENESIS, []
    events = AuditEvent.objects.using(db).order_by("time", "id")
    for seq, event in enumerate(events.iterator(chunk_size=BATCH), start=1):
        event.seq, event.prev_hash = seq, prev_hash
        fields = {name: getattr(event, name) for name in chain.FIELDS}
        event.hash = prev_hash = chain.digest(chain.canonical_fields(**fields))
        batch.append(event)
        if len(batch) == BATCH:
            AuditEvent.objects.using(db).bulk_update(batch, ["seq", "prev_hash", "hash"])
            batch = []
    AuditEvent.objects.using(db).bulk_update(batch, ["seq", "prev_hash", "hash"])


def install_triggers(apps, schema_editor):
    triggers.install(schema_editor.connection)


def remove_triggers(apps, schema_editor):
    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(editable=False, null=True, verbose_name="sequence number"),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64, verbose_name="previous hash"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(default="", editable=False, max_length=64, verbose_name="hash"),
            preserve_default=False,
        ),
        migrations.RunPython(link_existing_events, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(editable=False, unique=True, verbose_name="sequence number"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=audit.models.KeptForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="actor",
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(max_length=100, verbose_name="action"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="organization_id",
            field=models.UUIDField(blank=True, null=True, verbose_name="organization id"),
        ),
        migrations.RemoveIndex(model_name="auditevent", name="audit_audit_object__2222de_idx"),
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "base_manager_name": "objects",
                "ordering": ["-seq"],
                "verbose_name": "audit event",
                "verbose_name_plural": "audit events",
            },
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["organization_id", "-seq"], name="audit_org_seq"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["action", "-seq"], name="audit_action_seq"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["object_type", "object_id", "-seq"], name="audit_object_seq"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["actor", "-seq"], name="audit_actor_seq"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["actor_name", "-seq"], name="audit_actor_name_seq"),
        ),
        migrations.CreateModel(
            name="AuditAnchor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("first_seq", models.BigIntegerField(verbose_name="first pruned sequence number")),
                ("prev_hash", models.CharField(max_length=64, verbose_name="previous hash")),
                ("seq", models.BigIntegerField(unique=True, verbose_name="last pruned sequence number")),
                ("hash", models.CharField(max_length=64, verbose_name="hash of the last pruned event")),
                ("count", models.BigIntegerField(verbose_name="events pruned")),
                ("before", models.DateTimeField(verbose_name="pruned events before")),
                ("archive_name", models.CharField(max_length=255, verbose_name="archive file")),
                ("archive_sha256", models.CharField(max_length=64, verbose_name="archive SHA-256")),
                ("pruned_by", models.CharField(max_length=150, verbose_name="pruned by")),
                ("time", models.DateTimeField(default=django.utils.timezone.now, verbose_name="time")),
            ],
            options={
                "verbose_name": "audit log prune",
                "verbose_name_plural": "audit log prunes",
                "ordering": ["-seq"],
                "base_manager_name": "objects",
            },
        ),
        migrations.RunPython(install_triggers, remove_triggers),
    ]
