"""SyncFolderItems: paging, collapsing, interleaved changes, Ignore, read flags and bad states."""

from __future__ import annotations

import base64
import random

import pytest
from exchangelib import Account, Message, Task
from exchangelib.errors import ErrorInvalidSyncStateData
from exchangelib.folders import BaseFolder
from exchangelib.properties import ItemId
from exchangelib.services import SyncFolderItems

from .conftest import BOB


def sync_page(
    account: Account,
    folder: BaseFolder,
    state: str | None,
    max_changes: int = 512,
    ignore: list[ItemId] | None = None,
    fields: tuple[str, ...] = (),
) -> tuple[list, str, bool]:
    """One SyncFolderItems call: (changes, new state, includes last item in range)."""
    svc = SyncFolderItems(account=account)
    additional = {f for f in (folder.normalize_fields(fields) if fields else ())}
    changes = list(
        svc.call(
            folder=folder,
            shape="IdOnly",
            additional_fields=additional,
            sync_state=state,
            ignore=ignore,
            max_changes_returned=max_changes,
            sync_scope=None,
        )
    )
    return changes, svc.sync_state, svc.includes_last_item_in_range


def change_id(change: tuple) -> str:
    kind, obj = change
    if kind == "read_flag_change":
        return obj[0].id
    return obj.id


def apply(view: dict[str, str], changes: list) -> None:
    for kind, obj in changes:
        if kind in ("create", "update"):
            view[obj.id] = obj.changekey
        elif kind == "delete":
            view.pop(obj.id, None)


def actual(account: Account, folder: BaseFolder) -> dict[str, str]:
    return {i.id: i.changekey for i in folder.all().only("id", "changekey")}


def test_initial_sync_ids_only(alice: Account) -> None:
    alice.bulk_create(folder=alice.tasks, items=[Task(subject=f"t{i}") for i in range(5)])
    changes, state, last = sync_page(alice, alice.tasks, None)
    assert last is True
    assert [k for k, _ in changes] == ["create"] * 5
    for _, item in changes:
        assert item.id and item.changekey
        assert item.subject is None  # IdOnly: nothing but the id
    again, _, last = sync_page(alice, alice.tasks, state)
    assert (again, last) == ([], True)


def test_high_level_sync_items_sets_state_after_consumption(alice: Account) -> None:
    alice.bulk_create(folder=alice.tasks, items=[Task(subject=f"t{i}") for i in range(30)])
    changes = list(alice.tasks.sync_items(only_fields=["subject"], max_changes_returned=7))
    assert sorted(item.subject for _, item in changes) == sorted(f"t{i}" for i in range(30))
    state = alice.tasks.item_sync_state
    assert state
    Task(account=alice, folder=alice.tasks, subject="new").save()
    newer = list(alice.tasks.sync_items(sync_state=state, only_fields=["subject"]))
    assert [(k, i.subject) for k, i in newer] == [("create", "new")]


def test_changes_collapse_per_item(alice: Account) -> None:
    keep = Task(account=alice, folder=alice.tasks, subject="keep")
    keep.save()
    doomed = Task(account=alice, folder=alice.tasks, subject="doomed")
    doomed.save()
    _, state, _ = sync_page(alice, alice.tasks, None)
    created_then_updated = Task(account=alice, folder=alice.tasks, subject="a")
    created_then_updated.save()
    created_then_updated.subject = "b"
    created_then_updated.save()
    created_then_deleted = Task(account=alice, folder=alice.tasks, subject="ghost")
    created_then_deleted.save()
    created_then_deleted.delete()
    keep.subject = "kept"
    keep.save()
    keep.subject = "kept again"
    keep.save()
    doomed.subject = "changed"
    doomed.save()
    doomed_id = doomed.id
    doomed.delete()
    changes, _, last = sync_page(alice, alice.tasks, state)
    assert last is True
    kinds = {change_id(c): c[0] for c in changes}
    assert kinds == {created_then_updated.id: "create", keep.id: "update", doomed_id: "delete"}
    assert len(changes) == 3  # each item once


def test_moves_show_as_delete_and_create(alice: Account) -> None:
    item = Message(account=alice, folder=alice.inbox, subject="move me")
    item.save()
    _, inbox_state, _ = sync_page(alice, alice.inbox, None)
    _, trash_state, _ = sync_page(alice, alice.trash, None)
    old_id = item.id
    item.move(alice.trash)
    inbox_changes, _, _ = sync_page(alice, alice.inbox, inbox_state)
    trash_changes, _, _ = sync_page(alice, alice.trash, trash_state)
    assert [(k, change_id((k, o))) for k, o in inbox_changes] == [("delete", old_id)]
    assert [(k, change_id((k, o))) for k, o in trash_changes] == [("create", item.id)]


def test_read_flag_change(alice: Account, bob: Account) -> None:
    Message(account=alice, subject="hi", body="x", to_recipients=[BOB]).send(save_copy=False)
    _, state, _ = sync_page(bob, bob.inbox, None)
    msg = bob.inbox.all()[0]
    msg.is_read = True
    msg.save(update_fields=["is_read"])
    changes, _, _ = sync_page(bob, bob.inbox, state)
    assert len(changes) == 1
    kind, (item_id, is_read) = changes[0]
    assert (kind, item_id.id, is_read) == ("read_flag_change", msg.id, True)


def test_ignore_list(alice: Account) -> None:
    _, state, _ = sync_page(alice, alice.tasks, None)
    mine = Task(account=alice, folder=alice.tasks, subject="written by the sync engine")
    mine.save()
    theirs = Task(account=alice, folder=alice.tasks, subject="written by the user")
    theirs.save()
    changes, new_state, _ = sync_page(alice, alice.tasks, state, ignore=[ItemId(mine.id, mine.changekey)])
    assert [change_id(c) for c in changes] == [theirs.id]
    assert sync_page(alice, alice.tasks, new_state)[0] == []  # ignored changes are consumed, not postponed


@pytest.mark.parametrize(
    "state",
    [
        "garbage",
        base64.b64encode(b'{"m":"alice@example.com","f":"x","s":1}').decode() + ".0000",
        "",  # replaced below by a state of another folder
    ],
)
def test_corrupt_or_foreign_state_is_rejected(alice: Account, state: str) -> None:
    if not state:
        _, state, _ = sync_page(alice, alice.calendar, None)
    with pytest.raises(ErrorInvalidSyncStateData):
        sync_page(alice, alice.tasks, state)


def test_state_of_another_mailbox_is_rejected(alice: Account, bob: Account) -> None:
    _, state, _ = sync_page(bob, bob.tasks, None)
    with pytest.raises(ErrorInvalidSyncStateData):
        sync_page(alice, alice.tasks, state)


def test_paging_over_1000_items_with_interleaved_changes(alice: Account) -> None:
    rng = random.Random(7)
    folder = alice.tasks
    created = alice.bulk_create(folder=folder, items=[Task(subject=f"t{i}") for i in range(1000)])
    live = {c.id: c for c in created}
    view: dict[str, str] = {}
    state: str | None = None
    pages = 0
    creates_seen: dict[str, int] = {}
    while True:
        changes, state, last = sync_page(alice, folder, state, max_changes=100)
        pages += 1
        ids = [change_id(c) for c in changes]
        assert len(ids) == len(set(ids)), "an item was reported twice in one call"
        assert len(ids) <= 100
        for kind, obj in changes:
            if kind == "create":
                creates_seen[obj.id] = creates_seen.get(obj.id, 0) + 1
            if kind == "update":
                assert obj.id in view, "update for an item the client never got"
        apply(view, changes)
        if last:
            break
        if pages <= 6:  # meanwhile, the user keeps working
            for _ in range(5):
                new = Task(account=alice, folder=folder, subject=f"new{pages}")
                new.save()
                live[new.id] = new
            for item_id in rng.sample(sorted(live), 10):
                task = alice.tasks.get(id=item_id)
                task.subject = f"edited {pages}"
                task.save(update_fields=["subject"])
            doomed = rng.sample(sorted(live), 5)
            alice.bulk_delete(ids=[ItemId(id=live.pop(item_id).id) for item_id in doomed])
    assert pages >= 10
    assert view == actual(alice, folder)
    assert len(view) == 1000 + 6 * 5 - 6 * 5
    assert all(count == 1 for count in creates_seen.values()), "a create was reported twice"
    # and a later sync from the final state is empty
    assert sync_page(alice, folder, state)[0] == []
