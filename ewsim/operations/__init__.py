"""EWS operations: one function per operation, taking the request context and the operation element
and returning the response messages."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from .attachments import create_attachment, delete_attachment, get_attachment
from .common import Context
from .find import find_item
from .folders import create_folder, delete_folder, find_folder, get_folder, sync_folder_hierarchy
from .items import copy_item, create_item, delete_item, get_item, move_item, send_item, update_item
from .sync import sync_folder_items

Operation = Callable[[Context, etree._Element], list[etree._Element]]

OPERATIONS: dict[str, Operation] = {
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "CreateFolder": create_folder,
    "DeleteFolder": delete_folder,
    "SyncFolderHierarchy": sync_folder_hierarchy,
    "CreateItem": create_item,
    "GetItem": get_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "MoveItem": move_item,
    "CopyItem": copy_item,
    "SendItem": send_item,
    "FindItem": find_item,
    "SyncFolderItems": sync_folder_items,
    "CreateAttachment": create_attachment,
    "GetAttachment": get_attachment,
    "DeleteAttachment": delete_attachment,
}

__all__ = ["OPERATIONS", "Context", "Operation"]
