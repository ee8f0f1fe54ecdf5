"""What a client instance may see, and which records its filters select.

A client sees the CRM records of its instance's organization that its user may see in the
portal (crm/access.py: an administrator every record of the organization, a plain user their
own; other roles none), narrowed by the user's filters:

- the *changes* feed uses the user's sync filters (crm/filters.py), as a mailbox does;
- the *offline* feed uses the user's offline filters (clients.OfflineFilter), or the sync
  filters when the user has no offline filter at all.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext as _

from clients.models import ClientError, ClientInstance, Feed, OfflineFilter
from crm.filters import compile_rules
from crm.models import FilterOperator, RecordType, SyncFilter
from mailboxes.models import Membership, Organization, Role

RELATIVE_DATE_OPS = {FilterOperator.ON_OR_AFTER_DAYS.value, FilterOperator.ON_OR_BEFORE_DAYS.value}


class BrokenFilter(ClientError):
    """A stored filter no longer validates: nothing is pulled rather than too little."""


def crm_role(user: Any, organization: Organization) -> str | None:
    return Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()


def crm_visibility(user: Any, organization: Organization, role: str | None) -> Q | None:
    """The records of the organization the user may see and change, or None: none at all."""
    if role == Role.ADMINISTRATOR:
        return Q(organization=organization)
    if role == Role.USER:
        return Q(organization=organization, owner_id=user.pk)
    return None


@dataclass(frozen=True)
class Scope:
    """What one feed of one instance selects now.

    ``epoch`` changes whenever the selection may change without any record changing: the
    filters were edited, the user's role changed, or (for filters with dates relative to
    today) the day changed. A cursor from another epoch starts a full reconcile.
    """

    organization: Organization
    visible: Q | None
    filters: dict[str, Q | None]
    epoch: str

    def selects(self, record_type: str) -> Q | None:
        """The live records of the type that go to the client, or None: none do."""
        fq = self.filters.get(record_type)
        if fq is None or self.visible is None:
            return None
        return self.visible & fq & Q(deleted_at__isnull=True)


def feed_scope(instance: ClientInstance, feed: str, today: datetime.date) -> Scope:
    user, organization = instance.user, instance.organization
    role = crm_role(user, organization)
    visible = crm_visibility(user, organization, role)
    rows: list[tuple[str, Any, Any, Any]] = []
    kind = "sync"
    if feed == Feed.OFFLINE:
        offline = OfflineFilter.objects.filter(user=user, organization=organization).order_by("id")
        found = list(offline.values_list("record_type", "id", "rules", "updated", "enabled"))
        if found:
            kind = "offline"
            rows = [row[:4] for row in found if row[4]]
    if kind == "sync":
        query = SyncFilter.objects.filter(user=user, organization=organization, enabled=True).order_by("id")
        rows = list(query.values_list("record_type", "id", "rules", "updated"))
    filters = {
        record_type: _compiled(record_type, rows, user, organization, today) for record_type in RecordType.values
    }
    relative = any(_uses_relative_dates(rules) for _t, _id, rules, _u in rows)
    canonical = [
        feed,
        kind,
        str(organization.pk),
        role or "",
        today.isoformat() if relative else "",
        [[t, str(pk), rules, updated.isoformat()] for t, pk, rules, updated in rows],
    ]
    epoch = hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Scope(organization=organization, visible=visible, filters=filters, epoch=epoch)


def _compiled(record_type: str, rows: list[Any], user: Any, organization: Organization, today: Any) -> Q | None:
    """The OR of the user's filters of one type, within the organization; None without any."""
    combined: Q | None = None
    for row_type, pk, rules, _updated in rows:
        if row_type != record_type:
            continue
        try:
            q = compile_rules(record_type, rules, user, today)
        except ValidationError as error:
            raise BrokenFilter(
                _("The filter %(id)s no longer validates (%(error)s): fix it, then pull again.")
                % {"id": pk, "error": " ".join(error.messages)}
            ) from None
        combined = q if combined is None else combined | q
    return None if combined is None else Q(organization=organization) & combined


def _uses_relative_dates(group: Any) -> bool:
    if not isinstance(group, dict):
        return False
    for row in group.get("rules", []) or []:
        if not isinstance(row, dict):
            continue
        if _uses_relative_dates(row) if "rules" in row else row.get("operator") in RELATIVE_DATE_OPS:
            return True
    return False
