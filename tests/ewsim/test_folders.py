"""Folders through exchangelib: distinguished folders, sub-folders, FindFolder, hierarchy sync."""

from __future__ import annotations

import pytest
from exchangelib import Account, Folder
from exchangelib.errors import ErrorFolderExists
from exchangelib.folders import Calendar, Contacts, DeletedItems, Drafts, Inbox, SentItems, Tasks

from .conftest import ALICE


def test_distinguished_folders_resolve_to_their_classes(alice: Account) -> None:
    assert isinstance(alice.inbox, Inbox)
    assert isinstance(alice.calendar, Calendar)
    assert isinstance(alice.contacts, Contacts)
    assert isinstance(alice.tasks, Tasks)
    assert isinstance(alice.sent, SentItems)
    assert isinstance(alice.trash, DeletedItems)
    assert isinstance(alice.drafts, Drafts)
    assert alice.msg_folder_root.name == "Top of Information Store"
    assert alice.inbox.parent == alice.msg_folder_root
    assert alice.root.id != alice.inbox.id


def test_create_subfolder_and_navigate(alice: Account) -> None:
    sub = Folder(parent=alice.inbox, name="Projects")
    sub.save()
    assert sub.id
    alice.root.clear_cache()
    found = alice.inbox / "Projects"
    assert found.id == sub.id
    assert found.name == "Projects"
    nested = Folder(parent=found, name="2024")
    nested.save()
    alice.root.clear_cache()
    assert (alice.inbox / "Projects" / "2024").id == nested.id
    names = {f.name for f in alice.inbox.walk()}
    assert names == {"Projects", "2024"}


def test_duplicate_folder_name_is_rejected(alice: Account) -> None:
    Folder(parent=alice.inbox, name="Dup").save()
    with pytest.raises(ErrorFolderExists):
        Folder(parent=alice.inbox, name="dup").save()


def test_find_folder_shallow_lists_children(alice: Account) -> None:
    names = {f.name for f in alice.msg_folder_root.children}
    assert {"Inbox", "Sent Items", "Deleted Items", "Drafts", "Contacts", "Calendar", "Tasks"} <= names


def test_items_in_a_subfolder_are_kept_apart(alice: Account) -> None:
    from exchangelib import Message

    sub = Folder(parent=alice.inbox, name="Sub")
    sub.save()
    Message(account=alice, folder=sub, subject="in sub").save()
    Message(account=alice, folder=alice.inbox, subject="in inbox").save()
    assert [m.subject for m in sub.all()] == ["in sub"]
    assert [m.subject for m in alice.inbox.all()] == ["in inbox"]
    alice.root.clear_cache()  # counts are cached with the folder objects
    assert (alice.inbox / "Sub").total_count == 1


def test_sync_folder_hierarchy_reports_new_folders_once(alice: Account) -> None:
    first = {f.name for change, f in alice.root.sync_hierarchy() if change == "create"}
    assert {"Inbox", "Calendar", "Contacts", "Tasks"} <= first
    state = alice.root.folder_sync_state
    Folder(parent=alice.inbox, name="Later").save()
    second = [(change, f.name) for change, f in alice.root.sync_hierarchy(sync_state=state)]
    assert second == [("create", "Later")]
    assert list(alice.root.sync_hierarchy()) == []


def test_folder_delete_removes_it(alice: Account) -> None:
    sub = Folder(parent=alice.inbox, name="Gone")
    sub.save()
    sub.delete()
    alice.root.clear_cache()
    assert "Gone" not in {f.name for f in alice.inbox.children}
    assert ALICE  # the mailbox still exists; only the folder went
