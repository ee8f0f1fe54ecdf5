"""What the self-service pages compute: a mailbox's state in words, filters in words, the
rule editor's choices, and resolving a conflict with the side the mailbox's owner chose."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.utils.translation import gettext as _

from audit.log import Actor
from clients.models import ClientConflict
from clients.records import fields_of
from crm.access import visible_records
from crm.filters import DAY_OPS, editor_fields, editor_spec, validate_rules
from crm.models import SYNCED_MODELS, Account, Contact, FilterOperator
from mailboxes.forms import by_full_name
from mailboxes.models import (
    ApprovalStatus,
    Channel,
    EmailServerProfile,
    IncomingMethod,
    Mailbox,
    Membership,
    Organization,
    TestStatus,
)
from syncjobs.models import Conflict, shown
from syncjobs.testenable import sync_refusal

# Sides of a conflict, as Conflict.resolution names them.
CRM, MAILBOX = "crm", "exchange"

# How many accounts, contacts and users the rule editor offers by name.
EDITOR_CHOICES = 500


# The mailbox -------------------------------------------------------------------------------


def setup_organization(user: Any) -> Organization | None:
    """The organization a new mailbox of the user belongs to: their synchronizing one (DOMAIN.md
    rule 1), else the first of their organizations."""
    membership = (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("-is_sync_organization", "organization__name")
        .first()
    )
    return membership.organization if membership else None


def setup_profile(organization: Organization | None) -> EmailServerProfile | None:
    """The server profile a user's own new mailbox gets: the organization's default profile, or
    its only profile; None when an administrator has to choose."""
    if organization is None:
        return None
    profiles = list(EmailServerProfile.objects.filter(organization=organization).order_by("-is_default", "name")[:2])
    if profiles and (profiles[0].is_default or len(profiles) == 1):
        return profiles[0]
    return None


def advice(mailbox: Mailbox, channel: str) -> str:
    """What the owner can do so that a channel syncs, in plain words; "" when it syncs.

    The conditions are those of ``sync_refusal`` (which says why), in the same order.
    """
    if not sync_refusal(mailbox, channel):
        return ""
    profile = mailbox.profile
    if not mailbox.is_active:
        return _("An administrator switched your mailbox off: ask them to switch it on.")
    if not mailbox.in_sync_organization():
        return _("Make this organization your synchronizing organization under My settings.")
    if mailbox.method(channel) == IncomingMethod.NONE:
        return _("Choose a sync method for this channel if it should sync.")
    if profile is None:
        return _("Ask an administrator to choose an email server profile for your mailbox.")
    if not mailbox.address:
        return _("Enter your email address.")
    if not mailbox.address_ok():
        if mailbox.approval_status == ApprovalStatus.REJECTED:
            return _("Your address was rejected: correct it, or ask an administrator why.")
        return _("Wait until an administrator approves your address.")
    if channel == Channel.ACT and not profile.carries_act:
        return _("Your server profile carries email only: choose None or Client for this channel.")
    if mailbox.needs_own_credentials and not mailbox.password_stored:
        return _("Enter your mailbox's user name and password.")
    if getattr(mailbox, f"test_{channel}") == TestStatus.FAILURE:
        return _("Correct what the test reported, then run Test & Enable again.")
    if getattr(mailbox, f"test_{channel}") != TestStatus.SUCCESS:
        return _("Run Test & Enable.")
    return _("Correct the cause (for example your password), then run Test & Enable again.")


def channel_states(mailbox: Mailbox) -> list[dict[str, Any]]:
    """Per channel: the mailbox page's row (``Mailbox.channel_rows``), why it does not sync and
    what to do about it."""
    return [
        {**row, "refusal": sync_refusal(mailbox, channel), "advice": advice(mailbox, channel)}
        for channel, row in zip(Channel.values, mailbox.channel_rows(), strict=True)
    ]


def error_advice(mailbox: Mailbox) -> str:
    """What to do about the mailbox's last error (DOMAIN.md: correct, then Test & Enable again)."""
    if not mailbox.last_error:
        return ""
    if mailbox.needs_own_credentials:
        return _(
            "If your password changed, enter the new one under “Change”. Then run Test & Enable again; "
            "if the error stays, tell an administrator."
        )
    return _("Run Test & Enable again once the cause is corrected; if the error stays, tell an administrator.")


# Filters in words --------------------------------------------------------------------------


class RuleWords:
    """Turns a filter's rules into a sentence: "Owner is me and Active equals Yes".

    Names of the users, accounts and contacts a rule refers to are looked up once per id.
    """

    def __init__(self) -> None:
        self._fields: dict[str, dict[str, dict[str, Any]]] = {}
        self._names: dict[tuple[str, str], str] = {}

    def fields(self, record_type: str) -> dict[str, dict[str, Any]]:
        if record_type not in self._fields:
            self._fields[record_type] = {f["name"]: f for f in editor_fields(record_type)}
        return self._fields[record_type]

    def describe(self, record_type: str, rules: Any) -> str:
        try:
            group = validate_rules(record_type, rules)
        except ValidationError as error:
            return " ".join(error.messages)
        if not group["rules"]:
            return _("Every record")
        return self._group(record_type, group, top=True)

    def _group(self, record_type: str, group: dict[str, Any], top: bool = False) -> str:
        parts = [
            self._group(record_type, row) if "rules" in row else self._row(record_type, row) for row in group["rules"]
        ]
        if not parts:
            return _("every record")
        joiner = _(" and ") if group["match"] == "all" else _(" or ")
        text = joiner.join(parts)
        return text if top or len(parts) == 1 else f"({text})"

    def _row(self, record_type: str, row: dict[str, Any]) -> str:
        field = self.fields(record_type)[row["field"]]
        operator = dict(field["operators"]).get(row["operator"], row["operator"])
        if row["operator"] in (FilterOperator.IS_ME, FilterOperator.IS_SET, FilterOperator.IS_NOT_SET):
            return f"{field['label']} {operator}"
        if row["operator"] in DAY_OPS:
            return f"{field['label']} {operator} (N = {row['value']})"
        values = row["value"] if isinstance(row["value"], list) else [row["value"]]
        shown = ", ".join(self._value(field, value) for value in values)
        return f"{field['label']} {operator} {shown}"

    def _value(self, field: dict[str, Any], value: Any) -> str:
        if field["kind"] in ("choice", "bool"):
            key = str(value).lower() if isinstance(value, bool) else str(value)
            return str(dict(field["choices"]).get(key, value))
        if field["kind"] in ("user", "account", "contact"):
            return self._name(field["kind"], str(value))
        if field["kind"] == "text":
            return f"“{value}”"
        return str(value)

    def _name(self, kind: str, pk: str) -> str:
        key = (kind, pk)
        if key not in self._names:
            if kind == "user":
                found = get_user_model().objects.filter(pk=pk).first()
                name = (found.get_full_name() or found.get_username()) if found else ""
            else:
                model = Account if kind == "account" else Contact
                name = str(model.all_objects.filter(pk=pk).first() or "")
            self._names[key] = name or pk
        return self._names[key]


def editor_data(user: Any, organization_ids: list[Any]) -> dict[str, Any]:
    """Everything the rule editor offers: ``crm.filters.editor_spec`` and, by name, the members
    of the organizations and the accounts and contacts the person may see (the first ones)."""
    members = Membership.objects.filter(organization_id__in=organization_ids).values("user_id")
    users = by_full_name(get_user_model().objects.filter(pk__in=members))[:EDITOR_CHOICES]
    records = {}
    for kind, model in (("account", Account), ("contact", Contact)):
        visible = visible_records(user, model).filter(organization_id__in=organization_ids)
        records[kind] = [(str(obj.pk), str(obj)) for obj in visible[:EDITOR_CHOICES]]
    labels = {
        "all": _("All of these"),
        "any": _("Any of these"),
        "add_row": _("Add a condition"),
        "add_group": _("Add a group"),
        "remove": _("Remove"),
        "remove_group": _("Remove this group"),
        "field": _("Field"),
        "operator": _("Operator"),
        "value": _("Value"),
        "values_hint": _("Separate values with commas."),
        "days_hint": _("Days from today; negative for the past."),
        "match": _("Records must match"),
        "empty": _("No conditions: every record of this type matches."),
        "group": _("Group"),
    }
    return {
        **editor_spec(),
        "users": [(str(u.pk), u.get_full_name() or u.get_username()) for u in users],
        "accounts": records["account"],
        "contacts": records["contact"],
        "labels": labels,
    }


# Conflicts ---------------------------------------------------------------------------------


def conflict_rows(conflict: Conflict) -> list[dict[str, Any]]:
    """Per disputed field: its label, the base and both versions, and which side the engine applied."""
    model = SYNCED_MODELS.get(conflict.record_type)
    rows = []
    for name in conflict.fields:
        try:
            label = str(model._meta.get_field(name).verbose_name) if model else name
        except FieldDoesNotExist:  # a field the model no longer has
            label = name
        rows.append(
            {
                "field": name,
                "label": label[:1].upper() + label[1:],
                "base": shown(conflict.base.get(name)),
                "crm": shown(conflict.crm_values.get(name)),
                "exchange": shown(conflict.exchange_values.get(name)),
                "applied": conflict.resolution.get(name, ""),
            }
        )
    return rows


def resolve_conflict(found: Conflict, side: str, actor: Actor) -> bool:
    """Settle a conflict with one side's values for every disputed field; False if it was closed
    or its record is gone (``Conflict.settle``, as the administrators' "apply the other side")."""
    if side not in (CRM, MAILBOX):
        raise ValueError(f"unknown side {side!r}")
    reason = (
        _("The mailbox's owner kept the CRM version.")
        if side == CRM
        else _("The mailbox's owner took the mailbox version.")
    )
    return found.settle(actor, dict.fromkeys(found.fields, side), reason)


def client_conflict_rows(conflict: ClientConflict, record: Any) -> list[dict[str, Any]]:
    """Per field the client sent: its label, the CRM's value now (or as recorded, if the record
    is gone) and the client's, and whether they differ."""
    model = SYNCED_MODELS.get(conflict.record_type)
    crm = fields_of(conflict.record_type, record) if record is not None else conflict.theirs.get("fields", {})
    rows = []
    for name, value in conflict.sent_fields().items():
        label = str(model._meta.get_field(name).verbose_name) if model else name
        rows.append(
            {
                "field": name,
                "label": label[:1].upper() + label[1:],
                "crm": shown(crm.get(name)),
                "client": shown(value),
                "differs": crm.get(name) != value,
            }
        )
    return rows
