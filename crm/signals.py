"""Signal receivers: new members get their sync filters."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from audit.log import Actor
from crm.filters import ensure_default_filters
from mailboxes.models import Membership


@receiver(post_save, sender=Membership, dispatch_uid="crm.give_new_member_sync_filters")
def give_new_member_sync_filters(sender: Any, instance: Membership, created: bool, raw: bool, **kwargs: Any) -> None:
    """Whichever way a user joins (Membership.add, the admin), copy templates or defaults."""
    if created and not raw:
        ensure_default_filters(instance.user, instance.organization, Actor.system("sync filters"))
