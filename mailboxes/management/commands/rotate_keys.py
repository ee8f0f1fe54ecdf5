"""Re-encrypt every stored secret with the first key of ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction

from audit.log import MASK, Actor, record
from crmsync_portal.lib import crypto
from crmsync_portal.lib.fields import Ciphertext, encrypted_fields


class Command(BaseCommand):
    help = (
        "Re-encrypt all stored secrets with the first key in ENCRYPTION_KEYS. To rotate: put a new key "
        "first in ENCRYPTION_KEYS (keep the old ones after it), run this command, then remove the old keys. "
        "Secrets saved while it runs are never overwritten."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("rotate_keys")
        rotated = skipped = 0
        for model in apps.get_models():
            if names := encrypted_fields(model):
                done, left = rotate_model(model, names, actor)
                rotated += done
                skipped += left
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rotated} secret(s)."))
        if skipped:
            self.stdout.write(
                self.style.WARNING(
                    f"{skipped} secret(s) were changed twice while the command ran and were left as saved; "
                    "run it again to be sure every secret uses the first key."
                )
            )


def rotate_model(model: type[models.Model], names: list[str], actor: Actor) -> tuple[int, int]:
    """Rotate one model's secrets row by row; returns (secrets re-encrypted, secrets skipped).

    1. Read each row's tokens (as stored; nothing is decrypted outside crypto.rotate).
    2. Write the re-encrypted tokens with compare-and-set: the UPDATE matches only while the
       row still holds the tokens read, so a secret saved meanwhile is never overwritten.
    3. A row that changed is read again and tried once more; if it changed again, it is
       skipped (the save that changed it encrypted with the first key already).
    4. Each rotated row gets one audit event in the same transaction, secrets masked.
    """
    empty = models.Q()
    for name in names:
        empty &= models.Q(**{name: ""})
    rotated = skipped = 0
    for pk in model._base_manager.exclude(empty).values_list("pk", flat=True).order_by("pk"):
        for _attempt in range(2):
            tokens = model._base_manager.filter(pk=pk).values(*names).first()
            if tokens is None or not any(tokens.values()):  # deleted or cleared meanwhile
                break
            if n := _compare_and_set(model, pk, tokens, actor):
                rotated += n
                break
        else:
            skipped += sum(1 for name in names if tokens[name])
    return rotated, skipped


def _compare_and_set(model: type[models.Model], pk: Any, tokens: dict[str, Any], actor: Actor) -> int:
    """Write the row's re-encrypted tokens if it still holds ``tokens``; returns how many were written."""
    try:
        new = {name: Ciphertext(crypto.rotate(token)) for name, token in tokens.items() if token}
    except crypto.DecryptionError:
        raise CommandError(
            f"A secret of {model._meta.label} {pk} cannot be decrypted with any key in ENCRYPTION_KEYS: "
            "put the key it was encrypted with back in the list, or enter the secret again in the portal."
        ) from None
    with transaction.atomic():
        if not model._base_manager.filter(pk=pk, **tokens).update(**new):
            return 0
        obj = model._base_manager.get(pk=pk)
        organization = obj.audit_organization() if hasattr(obj, "audit_organization") else None
        audit_name = getattr(model, "audit_name", "") or model._meta.model_name
        changes = {name: [MASK, MASK] for name in new}
        record(actor, f"{audit_name}.secrets_reencrypted", obj, changes=changes, organization=organization)
    return len(new)
