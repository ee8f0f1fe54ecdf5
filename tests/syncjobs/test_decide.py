"""The pure decision of SYNC.md step 4: one test per row of the table, then a state machine.

No database and no network: ``decide`` takes the stored status and both sides and returns a
``Decision``. The state machine keeps an in-memory CRM, mailbox and link table, applies each
Decision the way ``syncjobs.engine.ActSync`` does, and checks SYNC.md's invariants after every
sync: linked pairs agree, nothing is created twice, nothing disappears that no one deleted, and a
second sync right after a sync decides nothing.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from syncjobs.decide import (
    DROP,
    EXCHANGE_LIMITS,
    GONE,
    KEEP,
    NONE,
    REMOVED,
    SAVE,
    TO_CRM,
    TO_EXCHANGE,
    TWO_WAY,
    CrmSide,
    Decision,
    ExchangeSide,
    Rules,
    Status,
    clip,
    decide,
)

# The appointment fields of crm.directions.SYNC_FIELDS, as plain strings and a list.
FIELDS = ("subject", "start", "end", "location", "description", "attendees")
TWO_WAY_ALL = Rules(dict.fromkeys(FIELDS, TWO_WAY))
LIMIT = EXCHANGE_LIMITS["subject"]
LONG = "L" * (LIMIT + 40)


def appointment(**changes: Any) -> dict[str, Any]:
    values = {
        "subject": "Review",
        "start": "2030-01-07T09:00",
        "end": "2030-01-07T10:00",
        "location": "Room 1",
        "description": "Quarterly",
        "attendees": ["ann@example.org"],
    }
    return {**values, **changes}


def agreed(values: dict[str, Any], rules: Rules = TWO_WAY_ALL, **kw: Any) -> Status:
    """The status of a pair that last agreed on ``values`` (Exchange holding them clipped)."""
    return Status(rules.crm_hash(values), rules.exchange_hash(clip(values)), dict(values), **kw)


def crm(values: dict[str, Any], modified: float = 1.0, in_filter: bool = True) -> CrmSide:
    return CrmSide(dict(values), in_filter, modified)


def ex(values: dict[str, Any], modified: float = 1.0, tracked: bool = False) -> ExchangeSide:
    return ExchangeSide(clip(values), tracked, modified)


def writes(dec: Decision) -> bool:
    return bool(
        dec.create_exchange is not None
        or dec.update_exchange
        or dec.delete_exchange
        or dec.create_crm is not None
        or dec.update_crm
    )


def assert_saved(dec: Decision, crm_after: dict[str, Any], ex_after: dict[str, Any], rules: Rules = TWO_WAY_ALL):
    assert dec.link == SAVE
    assert dec.crm_hash == rules.crm_hash(crm_after)
    assert dec.exchange_hash == rules.exchange_hash(ex_after)


# One test per row of SYNC.md's table -------------------------------------------------------------


def test_nothing_changed_decides_nothing() -> None:
    v = appointment()
    dec = decide(agreed(v), crm(v), ex(v), TWO_WAY_ALL)
    assert dec.is_noop and not writes(dec)
    # Not read on either side ("None": unchanged) is the same.
    assert decide(agreed(v), None, None, TWO_WAY_ALL).is_noop


def test_crm_changed_updates_the_mailbox_only() -> None:
    v, new = appointment(), appointment(subject="Review (moved)")
    dec = decide(agreed(v), crm(new), ex(v), TWO_WAY_ALL)
    assert dec.update_exchange == {"subject": "Review (moved)"}
    assert dec.update_crm == {} and not dec.conflicts
    assert dec.base == new
    assert_saved(dec, new, clip(new))


def test_mailbox_changed_updates_the_crm_only() -> None:
    v, new = appointment(), appointment(location="Room 2")
    dec = decide(agreed(v), crm(v), ex(new), TWO_WAY_ALL)
    assert dec.update_crm == {"location": "Room 2"}
    assert dec.update_exchange == {} and not dec.conflicts
    assert dec.base == new
    assert_saved(dec, new, new)


def test_both_changed_to_the_same_content_only_stores_the_new_hashes() -> None:
    v, new = appointment(), appointment(description="Half-yearly")
    dec = decide(agreed(v), crm(new), ex(new), TWO_WAY_ALL)
    assert not writes(dec) and not dec.conflicts
    assert dec.base == new
    assert_saved(dec, new, new)


def test_both_changed_different_fields_merge_per_field() -> None:
    v = appointment()
    c, e = appointment(subject="Budget"), appointment(location="Room 9")
    dec = decide(agreed(v), crm(c, modified=5), ex(e, modified=9), TWO_WAY_ALL)
    merged = appointment(subject="Budget", location="Room 9")
    assert dec.update_exchange == {"subject": "Budget"}
    assert dec.update_crm == {"location": "Room 9"}
    assert not dec.conflicts
    assert dec.base == merged
    assert_saved(dec, merged, merged)


@pytest.mark.parametrize(("crm_time", "ex_time", "winner"), [(9.0, 5.0, "crm"), (5.0, 9.0, "exchange")])
def test_same_field_changed_differently_is_a_conflict_the_later_change_wins(
    crm_time: float, ex_time: float, winner: str
) -> None:
    v = appointment()
    c, e = appointment(subject="From the CRM", end="2030-01-07T11:00"), appointment(subject="From Outlook")
    dec = decide(agreed(v), crm(c, modified=crm_time), ex(e, modified=ex_time), TWO_WAY_ALL)
    assert dec.conflicts == {"subject": winner}
    subject = "From the CRM" if winner == "crm" else "From Outlook"
    merged = appointment(subject=subject, end="2030-01-07T11:00")
    assert dec.base == merged
    if winner == "crm":
        assert dec.update_exchange == {"subject": "From the CRM", "end": "2030-01-07T11:00"}
        assert dec.update_crm == {}
    else:
        assert dec.update_exchange == {"end": "2030-01-07T11:00"}
        assert dec.update_crm == {"subject": "From Outlook"}
    assert_saved(dec, merged, merged)


def test_a_new_record_in_the_filter_is_created_in_the_mailbox() -> None:
    v = appointment()
    dec = decide(None, crm(v), None, TWO_WAY_ALL)
    assert dec.create_exchange == v
    assert dec.create_crm is None and not dec.update_exchange and not dec.update_crm
    assert dec.base == v
    assert_saved(dec, v, clip(v))


def test_a_new_record_outside_the_filter_is_not_sent() -> None:
    dec = decide(None, crm(appointment(), in_filter=False), None, TWO_WAY_ALL)
    assert not writes(dec)


def test_a_new_tracked_item_is_created_in_the_crm() -> None:
    v = appointment()
    dec = decide(None, None, ex(v, tracked=True), TWO_WAY_ALL)
    assert dec.create_crm == v
    assert dec.create_exchange is None and not dec.update_exchange
    assert dec.base == v
    assert_saved(dec, v, v)


def test_a_new_untracked_item_stays_private() -> None:
    dec = decide(None, None, ex(appointment(), tracked=False), TWO_WAY_ALL)
    assert not writes(dec)
    assert dec.link != SAVE


def test_a_record_deleted_in_the_crm_is_deleted_in_the_mailbox() -> None:
    v = appointment()
    dec = decide(agreed(v), GONE, ex(v), TWO_WAY_ALL)
    assert dec.delete_exchange and dec.link == DROP
    assert dec.create_exchange is None and not dec.update_exchange


@pytest.mark.parametrize("ignore", [False, True])
def test_a_record_that_left_the_filter_is_deleted_or_only_unlinked(ignore: bool) -> None:
    v = appointment()
    rules = Rules(TWO_WAY_ALL.directions, ignore_logical_deletes=ignore)
    dec = decide(agreed(v, rules), crm(v, in_filter=False), ex(v), rules)
    assert dec.link == DROP
    assert dec.delete_exchange is (not ignore)
    assert not dec.update_exchange and not dec.update_crm


def test_an_item_deleted_in_the_mailbox_marks_the_link_removed() -> None:
    v = appointment()
    dec = decide(agreed(v), crm(v), GONE, TWO_WAY_ALL)
    assert dec.link == REMOVED
    assert not writes(dec)


def test_both_sides_gone_drops_the_link() -> None:
    v = appointment()
    dec = decide(agreed(v), GONE, GONE, TWO_WAY_ALL)
    assert dec.link == DROP and not writes(dec)


def test_a_removed_in_mailbox_link_ignores_crm_changes() -> None:
    v = appointment()
    status = agreed(v, removed_in_mailbox=True)
    dec = decide(status, crm(appointment(subject="Changed")), None, TWO_WAY_ALL)
    assert dec.is_noop and not writes(dec)
    # The record leaving the filter does not touch the mailbox either.
    assert not writes(decide(status, crm(v, in_filter=False), None, TWO_WAY_ALL))
    # The record deleted: the link goes, nothing is sent.
    dec = decide(status, GONE, None, TWO_WAY_ALL)
    assert dec.link == DROP and not writes(dec)


# Direction rules ---------------------------------------------------------------------------------


def rules_with(**directions: str) -> Rules:
    return Rules({**TWO_WAY_ALL.directions, **directions})


def test_a_to_exchange_field_ignores_mailbox_edits() -> None:
    rules = rules_with(location=TO_EXCHANGE)
    v = appointment()
    # Only the owned-by-CRM field edited in the mailbox: not a change at all.
    assert decide(agreed(v, rules), crm(v), ex(appointment(location="Outlook room")), rules).is_noop
    # Edited with another field: the other field comes back, the location does not.
    e = appointment(location="Outlook room", description="Notes")
    dec = decide(agreed(v, rules), crm(v), ex(e, modified=9), rules)
    assert dec.update_crm == {"description": "Notes"}
    assert "location" not in dec.update_crm


def test_a_to_crm_field_ignores_crm_edits() -> None:
    rules = rules_with(description=TO_CRM)
    v = appointment()
    assert decide(agreed(v, rules), crm(appointment(description="CRM notes")), ex(v), rules).is_noop
    c = appointment(description="CRM notes", subject="Renamed")
    dec = decide(agreed(v, rules), crm(c, modified=9), ex(v), rules)
    assert dec.update_exchange == {"subject": "Renamed"}
    # A new item starts with the CRM's value; only the changes after follow the direction.
    assert decide(None, crm(c), None, rules).create_exchange["description"] == "CRM notes"


def test_a_new_record_starts_with_every_synced_field() -> None:
    rules = rules_with(subject=TO_CRM, location=TO_EXCHANGE, description=NONE)
    v = appointment()
    synced = {f: v[f] for f in FIELDS if f != "description"}
    assert decide(None, crm(v), None, rules).create_exchange == synced
    assert decide(None, None, ex(v, tracked=True), rules).create_crm == synced


def test_a_none_field_is_never_sent() -> None:
    rules = rules_with(description=NONE)
    v = appointment()
    assert decide(agreed(v, rules), crm(appointment(description="a")), ex(appointment(description="b")), rules).is_noop
    c, e = appointment(description="a", subject="S1"), appointment(description="b", location="L1")
    dec = decide(agreed(v, rules), crm(c), ex(e), rules)
    assert "description" not in dec.update_exchange and "description" not in dec.update_crm
    assert "description" not in decide(None, crm(c), None, rules).create_exchange
    assert "description" not in decide(None, None, ex(e, tracked=True), rules).create_crm


# Exchange's 255-character limit ----------------------------------------------------------------


def test_clip_cuts_only_the_limited_properties() -> None:
    values = clip({"subject": LONG, "description": LONG})
    assert values == {"subject": LONG[:LIMIT], "description": LONG}


def test_a_clipped_long_subject_is_not_a_mailbox_change() -> None:
    v = appointment(subject=LONG)
    created = decide(None, crm(v), None, TWO_WAY_ALL)
    assert created.create_exchange["subject"] == LONG
    status = Status(created.crm_hash, created.exchange_hash, created.base)
    # Exchange holds 255 characters; reading them back is no change, and the CRM keeps all 295.
    dec = decide(status, crm(v), ExchangeSide(clip(v)), TWO_WAY_ALL)
    assert dec.is_noop and not writes(dec)


def test_a_long_subject_does_not_loop() -> None:
    v = appointment()
    c = appointment(subject=LONG)
    dec = decide(agreed(v), crm(c), ex(v), TWO_WAY_ALL)
    assert dec.update_exchange == {"subject": LONG}
    ex_after = clip({**v, **dec.update_exchange})
    status = Status(TWO_WAY_ALL.crm_hash(c), dec.exchange_hash, dec.base)
    again = decide(status, crm(c), ExchangeSide(ex_after), TWO_WAY_ALL)
    assert again.is_noop
    # A change past the limit only: nothing to send, the CRM is not cut either.
    c2 = appointment(subject=LONG + "tail")
    dec = decide(status, crm(c2), ExchangeSide(ex_after), TWO_WAY_ALL)
    assert dec.update_exchange == {} and dec.update_crm == {}
    # A mailbox edit of another field does not bring the clipped subject back.
    e = {**ex_after, "location": "Room 7"}
    dec = decide(status, crm(c), ExchangeSide(e, modified=9), TWO_WAY_ALL)
    assert dec.update_crm == {"location": "Room 7"}


# Regressions: defects of an earlier decide.py ---------------------------------------------------


def test_unlink_only_keeps_the_item_on_the_next_run() -> None:
    rules = Rules(TWO_WAY_ALL.directions, ignore_logical_deletes=True)
    v = appointment()
    first = decide(agreed(v, rules), crm(v, in_filter=False), ex(v), rules)
    assert first.link == DROP and not first.delete_exchange  # unlink only
    # The next run that reads the item (stamped with the id, no link) must not delete it.
    second = decide(None, crm(v, in_filter=False), ex(v), rules)
    assert not second.delete_exchange


def test_a_crm_only_change_does_not_clear_a_to_crm_field() -> None:
    rules = rules_with(description=TO_CRM)
    v = appointment(description="Only in the CRM")
    # A link whose base never held the field (created when creates sent outbound fields only).
    base = {f: v[f] for f in rules.outbound}
    mailbox = clip({**base, "description": None})
    status = Status(rules.crm_hash(v), rules.exchange_hash(mailbox), base)
    dec = decide(status, crm({**v, "subject": "Renamed"}, modified=9), ExchangeSide(mailbox), rules)
    assert dec.update_exchange == {"subject": "Renamed"}
    assert dec.update_crm == {}  # SYNC.md: CRM changed, mailbox unchanged -> update Exchange only


def test_a_long_to_crm_field_is_not_cut_when_the_crm_changes_another_field() -> None:
    # Found by SyncMachine: a mailbox-owned location longer than Exchange holds, created from the
    # CRM; a later CRM edit of another field wrote the clipped location back over the CRM's.
    rules = rules_with(location=TO_CRM)
    v = appointment(location="x" * 255 + "a")
    created = decide(None, crm(v), None, rules)
    mailbox = clip({**dict.fromkeys(FIELDS), **created.create_exchange})
    status = Status(created.crm_hash, rules.exchange_hash(mailbox), created.base)
    edited = {**v, "description": "Agenda"}
    for ex_side in (None, ExchangeSide(mailbox)):
        dec = decide(status, crm(edited, modified=9), ex_side, rules)
        assert dec.update_crm == {}
        assert dec.update_exchange == {"description": "Agenda"}
    # A mailbox edit of another field does not cut it either.
    dec = decide(status, crm(v), ExchangeSide({**mailbox, "subject": "Moved"}, modified=9), rules)
    assert dec.update_crm == {"subject": "Moved"}


def test_a_create_stores_the_hash_of_what_the_mailbox_holds() -> None:
    rules = rules_with(subject=TO_CRM, location=NONE)
    v = appointment(subject=LONG)
    created = decide(None, crm(v), None, rules)
    mailbox = clip({**dict.fromkeys(FIELDS), **created.create_exchange})
    assert created.exchange_hash == rules.exchange_hash(mailbox)
    status = Status(rules.crm_hash(v), created.exchange_hash, created.base)
    assert decide(status, crm(v), ExchangeSide(mailbox), rules).is_noop  # converges in one run


# The state machine ------------------------------------------------------------------------------

# The appointment fields of SYNC_FIELDS; start, end and attendees are always two-way
# (crm.directions.ALWAYS_TWO_WAY), the others take any direction.
FREE_FIELDS = ("subject", "location", "description")
DIRECTIONS = st.sampled_from([TWO_WAY, TWO_WAY, TO_EXCHANGE, TO_CRM, NONE])

SHORT = st.text(alphabet="ab ", max_size=3)


def _long(name: str) -> st.SearchStrategy[str]:
    limit = EXCHANGE_LIMITS[name]
    # Around and past the limit: values that differ only after it, and ones that do not.
    return st.builds(lambda n, tail: "x" * n + tail, st.integers(limit - 3, limit + 3), SHORT)


VALUE = {
    "subject": st.one_of(SHORT, _long("subject")),
    "location": st.one_of(SHORT, _long("location"), st.none()),
    "description": st.one_of(SHORT, st.none()),
    "start": st.sampled_from(["09:00", "10:00", "11:00"]),
    "end": st.sampled_from(["10:00", "11:00", "12:00"]),
    "attendees": st.lists(st.sampled_from(["ann@x", "bob@x", "cy@x"]), max_size=2, unique=True),
}
VALUES = st.fixed_dictionaries({f: VALUE[f] for f in FIELDS})
EDITS = st.fixed_dictionaries({}, optional={f: VALUE[f] for f in FIELDS}).filter(bool)
PICK = st.integers(min_value=0, max_value=10_000)


@dataclass
class Record:
    values: dict[str, Any]
    in_filter: bool = True
    deleted: bool = False
    modified: float = 0.0


@dataclass
class Item:
    values: dict[str, Any]
    tracked: bool = False
    stamp: str | None = None  # the CRM id in the extended property
    modified: float = 0.0


@dataclass
class Link:
    item_id: str  # "" once removed in the mailbox
    base: dict[str, Any]
    crm_hash: str
    exchange_hash: str
    removed: bool = False


@dataclass
class Entry:
    key: str
    link: Link | None = None
    item_id: str | None = None
    status: Status | None = None
    crm: Any = None
    ex: Any = None
    decision: Decision = field(default_factory=Decision)


def _full(values: dict[str, Any]) -> dict[str, Any]:
    return {f: values.get(f) for f in FIELDS}


def _nothing(entry: Entry) -> bool:
    """The decision changes nothing anywhere: no writes, no new, changed or dropped link."""
    dec = entry.decision
    return not writes(dec) and (dec.link == KEEP or (dec.link == DROP and entry.link is None))


class SyncMachine(RuleBasedStateMachine):
    """An in-memory CRM, mailbox and link table, synced with ``decide`` as the engine does."""

    def __init__(self) -> None:
        super().__init__()
        self.rules = TWO_WAY_ALL
        self.crm: dict[str, Record] = {}
        self.mail: dict[str, Item] = {}
        self.links: dict[str, Link] = {}
        self.ids = itertools.count(1)
        self.clock = itertools.count(1)
        self.created_from: Counter[str] = Counter()  # mailbox item -> CRM records made from it
        self.deleted_by_user: set[str] = set()  # mailbox items

    @initialize(directions=st.fixed_dictionaries({f: DIRECTIONS for f in FREE_FIELDS}), ignore=st.booleans())
    def configure(self, directions: dict[str, str], ignore: bool) -> None:
        self.rules = Rules({**TWO_WAY_ALL.directions, **directions}, ignore_logical_deletes=ignore)

    def tick(self) -> float:
        return float(next(self.clock))

    def pick(self, keys: Any, n: int) -> str:
        keys = sorted(keys)
        return keys[n % len(keys)]

    def live_records(self) -> list[str]:
        return [k for k, r in self.crm.items() if not r.deleted]

    # CRM side ----------------------------------------------------------------------------------

    @rule(values=VALUES, in_filter=st.booleans())
    def crm_create(self, values: dict[str, Any], in_filter: bool) -> None:
        self.crm[f"c{next(self.ids)}"] = Record(values, in_filter, modified=self.tick())

    @precondition(lambda self: self.live_records())
    @rule(n=PICK, edits=EDITS)
    def crm_edit(self, n: int, edits: dict[str, Any]) -> None:
        rec = self.crm[self.pick(self.live_records(), n)]
        rec.values.update(edits)
        rec.modified = self.tick()

    @precondition(lambda self: self.live_records())
    @rule(n=PICK)
    def crm_delete(self, n: int) -> None:
        rec = self.crm[self.pick(self.live_records(), n)]
        rec.deleted, rec.modified = True, self.tick()

    @precondition(lambda self: self.live_records())
    @rule(n=PICK)
    def crm_toggle_filter(self, n: int) -> None:
        """Leave the filter or come back into it (a date filter: no edit, no new timestamp)."""
        rec = self.crm[self.pick(self.live_records(), n)]
        rec.in_filter = not rec.in_filter

    # Mailbox side ------------------------------------------------------------------------------

    @rule(values=VALUES, tracked=st.booleans())
    def mail_create(self, values: dict[str, Any], tracked: bool) -> None:
        self.mail[f"i{next(self.ids)}"] = Item(clip(values), tracked, modified=self.tick())

    @precondition(lambda self: self.mail)
    @rule(n=PICK, edits=EDITS)
    def mail_edit(self, n: int, edits: dict[str, Any]) -> None:
        item = self.mail[self.pick(self.mail, n)]
        item.values.update(clip(edits))  # Exchange keeps 255 characters
        item.modified = self.tick()

    @precondition(lambda self: self.mail)
    @rule(n=PICK)
    def mail_delete(self, n: int) -> None:
        item_id = self.pick(self.mail, n)
        del self.mail[item_id]
        self.deleted_by_user.add(item_id)

    @precondition(lambda self: any(not i.tracked for i in self.mail.values()))
    @rule(n=PICK)
    def mail_track(self, n: int) -> None:
        """The user gives an item the tracked category."""
        self.mail[self.pick([k for k, i in self.mail.items() if not i.tracked], n)].tracked = True

    # Both sides of a linked pair -------------------------------------------------------------

    def linked_pairs(self) -> list[str]:
        return [
            key
            for key, link in self.links.items()
            if link.item_id in self.mail and not self.crm[key].deleted and self.crm[key].in_filter
        ]

    @precondition(lambda self: self.linked_pairs())
    @rule(n=PICK, edits=EDITS, in_crm=st.booleans())
    def edit_linked(self, n: int, edits: dict[str, Any], in_crm: bool) -> None:
        key = self.pick(self.linked_pairs(), n)
        side = self.crm[key] if in_crm else self.mail[self.links[key].item_id]
        side.values.update(edits if in_crm else clip(edits))
        side.modified = self.tick()

    @precondition(lambda self: self.linked_pairs())
    @rule(n=PICK, crm_edits=EDITS, mail_edits=EDITS, crm_later=st.booleans())
    def edit_both_sides(self, n: int, crm_edits: dict[str, Any], mail_edits: dict[str, Any], crm_later: bool) -> None:
        """Edits of the same pair between two runs, perhaps of the same fields: merges and conflicts."""
        key = self.pick(self.linked_pairs(), n)
        rec, item = self.crm[key], self.mail[self.links[key].item_id]
        first, second = self.tick(), self.tick()
        rec.values.update(crm_edits)
        item.values.update(clip(mail_edits))
        rec.modified, item.modified = (second, first) if crm_later else (first, second)

    # The sync ----------------------------------------------------------------------------------

    def gather(self) -> list[Entry]:
        """Every key: links, CRM records and mailbox items, matched as the engine matches them."""
        entries: dict[str, Entry] = {}
        linked = {link.item_id: key for key, link in self.links.items() if link.item_id}
        assert len(linked) == sum(1 for link in self.links.values() if link.item_id), "an item in two links"
        for key, link in self.links.items():
            entries[key] = Entry(key, link, link.item_id or None)
        for key in self.crm:
            entries.setdefault(key, Entry(key))
        for item_id, item in self.mail.items():
            if item_id in linked:
                continue
            stamp = item.stamp
            if stamp and (stamp not in self.links or not self.links[stamp].item_id):
                key = stamp  # ours: a create whose link was not stored (or was only unlinked)
            else:
                key = f"new:{item_id}"
            entry = entries.setdefault(key, Entry(key, self.links.get(key)))
            assert entry.item_id is None, f"two items stamped {key}"
            entry.item_id = item_id
        for entry in entries.values():
            link, rec = entry.link, self.crm.get(entry.key)
            if link is not None and link.base:
                entry.status = Status(link.crm_hash, link.exchange_hash, dict(link.base), link.removed)
            if rec is not None:
                entry.crm = GONE if rec.deleted else CrmSide(dict(rec.values), rec.in_filter, rec.modified)
            if entry.item_id is not None:
                item = self.mail.get(entry.item_id)
                entry.ex = GONE if item is None else ExchangeSide(dict(item.values), item.tracked, item.modified)
            entry.decision = decide(entry.status, entry.crm, entry.ex, self.rules)
        return list(entries.values())

    def check_decision(self, entry: Entry) -> None:
        """SYNC.md's table and the direction rules, per decision."""
        dec, rules = entry.decision, self.rules
        outbound, inbound = set(rules.outbound), set(rules.inbound)
        # A new item or record starts with every synced field; the changes after follow the directions.
        synced = {f for f, d in rules.directions.items() if d != NONE}
        assert set(dec.create_exchange or {}) <= synced and set(dec.update_exchange) <= outbound
        assert set(dec.create_crm or {}) <= synced and set(dec.update_crm) <= inbound
        assert set(dec.conflicts) <= {f for f, d in rules.directions.items() if d == TWO_WAY}
        status, c, e = entry.status, entry.crm, entry.ex
        if isinstance(c, CrmSide):  # a two-way field is never cut to what Exchange can hold
            for f, v in dec.update_crm.items():
                if rules.directions[f] != TWO_WAY:
                    continue
                was = c.values.get(f)
                assert not (v != was and v == clip({f: was})[f]), f"the CRM's {f} cut to Exchange's limit"
        if dec.create_crm is not None:
            assert isinstance(e, ExchangeSide) and e.tracked and entry.link is None
        if dec.create_exchange is not None:
            assert isinstance(c, CrmSide) and c.in_filter and entry.item_id is None
        if status is None or status.removed_in_mailbox:
            return
        if not (isinstance(c, CrmSide) and c.in_filter and isinstance(e, ExchangeSide)):
            return
        crm_changed = rules.crm_hash(c.values) != status.crm_hash
        ex_changed = rules.exchange_hash(e.values) != status.exchange_hash
        if not crm_changed and not ex_changed:
            assert dec.is_noop, "no content hash moved, yet a decision"
        for f, winner in dec.conflicts.items():  # the later change wins, and its value is kept
            assert winner == ("crm" if c.modified >= e.modified else "exchange"), (f, winner)
            assert dec.base[f] == (c.values if winner == "crm" else e.values).get(f), f
        # The side that did not change is written only to put back what both sides agreed on.
        base = status.base
        if not ex_changed:
            assert all(f in base and v == base[f] for f, v in dec.update_crm.items()), dec
        if not crm_changed:
            assert all(f in base and v == base[f] for f, v in dec.update_exchange.items()), dec

    def apply(self, entry: Entry) -> None:
        """Like ActSync.apply and commit: the mailbox writes, the CRM writes, the link."""
        dec, key = entry.decision, entry.key
        if dec.is_noop:
            return
        if dec.link == DROP:
            if dec.delete_exchange and entry.item_id in self.mail:
                rec = self.crm.get(key)
                assert rec is not None and (rec.deleted or not rec.in_filter), f"{entry.item_id} deleted for nothing"
                del self.mail[entry.item_id]
            self.links.pop(key, None)
            return
        if dec.link == REMOVED:
            link = self.links[key]
            link.removed, link.item_id = True, ""
            return
        assert dec.link == SAVE
        crm_id = key
        if dec.create_crm is not None:
            if key.startswith("new:"):
                crm_id = f"c{next(self.ids)}"
            assert crm_id not in self.crm, f"record {crm_id} created twice"
            self.crm[crm_id] = Record(_full(dec.create_crm), modified=self.tick())
            self.created_from[entry.item_id] += 1
        elif dec.update_crm:
            rec = self.crm[crm_id]
            if any(rec.values.get(f) != v for f, v in dec.update_crm.items()):
                rec.values.update(dec.update_crm)
                rec.modified = self.tick()
        item_id = entry.item_id
        if dec.create_exchange is not None:
            item_id = f"i{next(self.ids)}"
            self.mail[item_id] = Item(clip(_full(dec.create_exchange)), stamp=crm_id, modified=self.tick())
        else:
            item = self.mail[item_id]
            if dec.update_exchange:
                item.values.update(clip(dec.update_exchange))
                item.modified = self.tick()
            item.stamp = crm_id  # a created record's id, stamped with the update
        ex_hash = self.rules.exchange_hash(self.mail[item_id].values)
        assert dec.exchange_hash == ex_hash, "the Decision's exchange_hash is not what the mailbox holds"
        self.links.pop(key, None)
        self.links[crm_id] = Link(item_id, dict(dec.base), self.rules.crm_hash(self.crm[crm_id].values), ex_hash)

    @rule()
    def sync(self) -> None:
        records_before = {k: r.deleted for k, r in self.crm.items()}
        entries = self.gather()
        for entry in entries:
            self.check_decision(entry)
        for entry in entries:
            self.apply(entry)
        self.check_after_sync(records_before)

    def check_after_sync(self, records_before: dict[str, bool]) -> None:
        # Nothing disappeared that no one deleted.
        assert all(k in self.crm and self.crm[k].deleted == deleted for k, deleted in records_before.items())
        # Every linked pair holds the same content in the fields that sync both ways.
        two_way = [f for f, d in self.rules.directions.items() if d == TWO_WAY]
        for crm_id, link in self.links.items():
            rec = self.crm[crm_id]
            assert not rec.deleted, f"link to the deleted {crm_id}"
            if link.removed:
                continue
            assert rec.in_filter, f"link to {crm_id}, outside the filter"
            item = self.mail[link.item_id]
            assert item.stamp == crm_id
            for f in two_way:
                assert clip({f: rec.values.get(f)})[f] == item.values.get(f), (crm_id, f)
                assert link.base.get(f) == rec.values.get(f), (crm_id, f)
        # Every record in the filter reached the mailbox (or the user removed its item there).
        for crm_id, rec in self.crm.items():
            if not rec.deleted and rec.in_filter:
                assert crm_id in self.links, f"{crm_id} not synced"
        # Nothing was created twice.
        stamps = Counter(i.stamp for i in self.mail.values() if i.stamp)
        assert all(n == 1 for n in stamps.values()), stamps
        assert all(n == 1 for n in self.created_from.values()), self.created_from
        for item_id, item in self.mail.items():
            if item.tracked:
                assert item.stamp is not None, f"tracked {item_id} not in the CRM"
        # The sync converges in one run: a second one decides nothing.
        again = [e for e in self.gather() if not _nothing(e)]
        assert not again, [(e.key, e.decision) for e in again]


SyncMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSyncMachine = SyncMachine.TestCase
