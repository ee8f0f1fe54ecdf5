"""The decision: what to do with one record/item pair. A pure function.

No database, no network: the last-synced status, the CRM side and the mailbox
side go in, one ``Decision`` comes out. SYNC.md step 4 is the table this
implements; a Hypothesis state machine checks it (tests/syncjobs/test_decide.py).

Values are canonical dicts (``syncjobs.mapping``): the same field names and JSON
types on both sides. A side counts as changed only when its content hash moved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

TWO_WAY, TO_EXCHANGE, TO_CRM, NONE = "two_way", "to_exchange", "to_crm", "none"

# Exchange stores at most this many characters of these properties and cuts the rest.
EXCHANGE_LIMITS = {
    "subject": 255,
    "location": 255,
    "first_name": 255,
    "last_name": 255,
    "job_title": 255,
    "business_phone": 255,
    "mobile_phone": 255,
}


def to_exchange(direction: str) -> bool:
    return direction in (TWO_WAY, TO_EXCHANGE)


def to_crm(direction: str) -> bool:
    return direction in (TWO_WAY, TO_CRM)


def clip(values: dict[str, Any]) -> dict[str, Any]:
    """The values as Exchange stores them."""
    out = dict(values)
    for name, limit in EXCHANGE_LIMITS.items():
        value = out.get(name)
        if isinstance(value, str) and len(value) > limit:
            out[name] = value[:limit]
    return out


def content_hash(values: dict[str, Any], fields: list[str]) -> str:
    data = json.dumps({f: values.get(f) for f in sorted(fields)}, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass(frozen=True)
class Rules:
    directions: dict[str, str]  # field -> direction
    ignore_logical_deletes: bool = False

    @property
    def outbound(self) -> list[str]:
        return [f for f, d in self.directions.items() if to_exchange(d)]

    @property
    def inbound(self) -> list[str]:
        return [f for f, d in self.directions.items() if to_crm(d)]

    @property
    def synced(self) -> list[str]:
        """A new item or record starts with every synced field; the directions rule the changes after."""
        return [f for f, d in self.directions.items() if d != NONE]

    def crm_hash(self, values: dict[str, Any]) -> str:
        return content_hash(values, self.outbound)

    def exchange_hash(self, values: dict[str, Any]) -> str:
        return content_hash(clip(values), self.inbound)


@dataclass(frozen=True)
class Status:
    """What the link stored when the two sides last agreed."""

    crm_hash: str
    exchange_hash: str
    base: dict[str, Any]
    removed_in_mailbox: bool = False


@dataclass(frozen=True)
class CrmSide:
    values: dict[str, Any]
    in_filter: bool
    modified: float = 0.0  # a timestamp: "the later change wins"


@dataclass(frozen=True)
class ExchangeSide:
    values: dict[str, Any]
    tracked: bool = False
    modified: float = 0.0


# A side the run looked at and found deleted; None means "not read: unchanged".
GONE = "gone"

# What becomes of the link.
KEEP, SAVE, DROP, REMOVED = "keep", "save", "drop", "removed_in_mailbox"


@dataclass
class Decision:
    create_exchange: dict[str, Any] | None = None
    update_exchange: dict[str, Any] = field(default_factory=dict)
    delete_exchange: bool = False
    create_crm: dict[str, Any] | None = None
    update_crm: dict[str, Any] = field(default_factory=dict)
    link: str = KEEP
    # After the writes: the agreed values and what each side then holds.
    base: dict[str, Any] = field(default_factory=dict)
    crm_hash: str = ""
    exchange_hash: str = ""
    conflicts: dict[str, str] = field(default_factory=dict)  # field -> side whose value was applied

    @property
    def is_noop(self) -> bool:
        return self.link == KEEP


def decide(status: Status | None, crm: CrmSide | str | None, ex: ExchangeSide | str | None, rules: Rules) -> Decision:
    """One row of SYNC.md's table. ``crm``/``ex``: a side, GONE, or None (not read: unchanged)."""
    if status is None:
        return _unlinked(crm, ex, rules)
    if status.removed_in_mailbox:
        # The user removed the item: the record stays in the CRM and is not pushed back.
        return Decision(link=DROP) if crm == GONE else Decision()
    if crm == GONE or (isinstance(crm, CrmSide) and not crm.in_filter):
        if ex == GONE:
            return Decision(link=DROP)
        if crm != GONE and rules.ignore_logical_deletes:
            return Decision(link=DROP)  # unlink only: the item stays in the mailbox
        return Decision(delete_exchange=True, link=DROP)
    if ex == GONE:
        return Decision(link=REMOVED)
    crm_changed = isinstance(crm, CrmSide) and rules.crm_hash(crm.values) != status.crm_hash
    ex_changed = isinstance(ex, ExchangeSide) and rules.exchange_hash(ex.values) != status.exchange_hash
    if not crm_changed and not ex_changed:
        return Decision()
    return _merge(status.base, crm if crm_changed else None, ex if ex_changed else None, rules)


def _unlinked(crm: CrmSide | str | None, ex: ExchangeSide | str | None, rules: Rules) -> Decision:
    if isinstance(crm, CrmSide) and isinstance(ex, ExchangeSide):
        # An item stamped with this record's id, with no link: a run stopped after the create,
        # or the item was unlinked when its record left the filter.
        if not crm.in_filter:
            return Decision(link=DROP) if rules.ignore_logical_deletes else Decision(delete_exchange=True, link=DROP)
        return _merge({}, crm, ex, rules, crm_wins=True)
    if isinstance(crm, CrmSide):
        if not crm.in_filter:
            return Decision(link=DROP)
        values = {f: crm.values.get(f) for f in rules.synced}
        return _saved(values, crm.values, clip(values), rules, create_exchange=values)
    if isinstance(ex, ExchangeSide):
        if crm == GONE:
            return Decision(delete_exchange=True, link=DROP)  # stamped, and the record was deleted
        if not ex.tracked:
            return Decision(link=DROP)  # private: stays in the mailbox only
        values = {f: ex.values.get(f) for f in rules.synced}
        return _saved(values, values, ex.values, rules, create_crm=values)
    return Decision(link=DROP)


def _merge(
    base: dict[str, Any],
    crm: CrmSide | None,
    ex: ExchangeSide | None,
    rules: Rules,
    crm_wins: bool = False,
) -> Decision:
    """Merge per field against the base; None for a side means it holds the base."""
    exchange_base = clip(base)
    crm_values = crm.values if crm else base
    ex_values = ex.values if ex else exchange_base
    merged: dict[str, Any] = {}
    conflicts: dict[str, str] = {}
    for name, direction in rules.directions.items():
        c, e, b = crm_values.get(name), ex_values.get(name), base.get(name)
        if direction == NONE:
            merged[name] = b if name in base else c
        elif direction == TO_EXCHANGE:
            # The CRM owns it; a side that holds the base but never agreed on this field keeps its own.
            merged[name] = c if crm is not None or name in base else e
        elif direction == TO_CRM:
            # The mailbox owns it; an item that still holds the base, as far as Exchange can hold
            # it, has not changed it: the base stays, never cut to Exchange's limits.
            if ex is not None and not (name in base and e == exchange_base.get(name)):
                merged[name] = e
            else:
                merged[name] = b if name in base else c
        elif c == e or (c is not None and e == clip({name: c}).get(name)):
            merged[name] = c  # the same, or the same as far as Exchange can hold it
        elif name in base and e == exchange_base.get(name):
            merged[name] = c  # changed in the CRM only
        elif name in base and c == b:
            merged[name] = e  # changed in the mailbox only
        else:
            crm_later = crm_wins or (crm is not None and (ex is None or crm.modified >= ex.modified))
            merged[name] = c if crm_later else e
            if not crm_wins:
                conflicts[name] = "crm" if crm_later else "exchange"
    update_exchange = {
        f: v for f, v in merged.items() if to_exchange(rules.directions[f]) and clip({f: v}).get(f) != ex_values.get(f)
    }
    update_crm = {f: v for f, v in merged.items() if to_crm(rules.directions[f]) and v != crm_values.get(f)}
    crm_after = {**crm_values, **update_crm}
    ex_after = {**ex_values, **clip(update_exchange)}
    decision = _saved(merged, crm_after, ex_after, rules)
    decision.update_exchange = update_exchange
    decision.update_crm = update_crm
    decision.conflicts = conflicts
    return decision


def _saved(
    base: dict[str, Any], crm_after: dict[str, Any], ex_after: dict[str, Any], rules: Rules, **kw: Any
) -> Decision:
    return Decision(
        link=SAVE,
        base=dict(base),
        crm_hash=rules.crm_hash(crm_after),
        exchange_hash=rules.exchange_hash(ex_after),
        **kw,
    )
