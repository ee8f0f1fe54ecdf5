"""Exchange Web Services through exchangelib: the portal's one seam to Exchange.

1. One ``Account`` per run, with ``FailFast``: the engine decides about retries
   (SYNC.md, Errors), so exchangelib must not sleep inside a job or retry a 401 as
   throttling.
2. Folders are addressed by their distinguished ids, so a run that finds no change
   sends one SyncFolderItems per folder and nothing else.
3. exchangelib caches a protocol (and a failure to create one) per endpoint and
   credentials for the life of the process; ``close()`` drops this run's entry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    Account,
    Body,
    CalendarItem,
    Configuration,
    Contact,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    FailFast,
    Identity,
    OAuth2Credentials,
    Task,
    Version,
)
from exchangelib import errors as ews_errors
from exchangelib.folders import Calendar, Contacts, DistinguishedFolderId, Inbox, Root, SentItems, Tasks
from exchangelib.indexed_properties import EmailAddress, PhoneNumber
from exchangelib.items import SEND_TO_NONE
from exchangelib.properties import Attendee
from exchangelib.properties import Mailbox as EwsMailbox
from exchangelib.protocol import Protocol
from exchangelib.services import CreateItem, UpdateItem
from exchangelib.version import EXCHANGE_2016

from syncjobs import mapping
from syncjobs.backends.base import CREATED, DELETED, UPDATED, Change, FolderChanges, Item, Result
from syncjobs.decide import clip
from syncjobs.errors import InvalidSyncState, ItemError, PermanentError, SyncError, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

# EWS returns at most 512 changes per SyncFolderItems call.
MAX_CHANGES = 512
BATCH = 100
VERSION = Version(build=EXCHANGE_2016)


class CrmId(ExtendedProperty):
    """The stamp on every item the portal creates: the CRM record's id."""

    property_set_id = "a3f1c2d4-6b7e-4f80-9a1b-2c3d4e5f6071"
    property_name = "CrmSyncPortalRecordId"
    property_type = "String"


# Errors that concern one item of a batch: exchangelib raises them for the whole call, but
# Exchange applied the rest of the batch, so they are returned per item instead.
ITEM_ERRORS = (
    ews_errors.ErrorIrresolvableConflict,
    ews_errors.ErrorInvalidValueForProperty,
    ews_errors.ErrorInvalidPropertySet,
    ews_errors.ErrorPropertyUpdate,
    ews_errors.ErrorStaleObject,
    ews_errors.ErrorObjectTypeChanged,
)


class _CreateItem(CreateItem):
    ERRORS_TO_CATCH_IN_RESPONSE = CreateItem.ERRORS_TO_CATCH_IN_RESPONSE + ITEM_ERRORS


class _UpdateItem(UpdateItem):
    ERRORS_TO_CATCH_IN_RESPONSE = UpdateItem.ERRORS_TO_CATCH_IN_RESPONSE + ITEM_ERRORS


for _model in (Contact, CalendarItem, Task):
    with contextlib.suppress(ValueError):  # registered already (module reloaded)
        _model.register("crm_id", CrmId)

FOLDER_CLASSES = {"contacts": Contacts, "calendar": Calendar, "tasks": Tasks, "inbox": Inbox, "sentitems": SentItems}
ITEM_FIELDS = {
    "contacts": ["given_name", "surname", "email_addresses", "job_title", "phone_numbers", "body", "text_body"],
    "calendar": ["subject", "start", "end", "location", "body", "text_body", "required_attendees", "uid"],
    "tasks": ["subject", "body", "text_body", "due_date", "status", "importance"],
}
COMMON_FIELDS = ["categories", "crm_id", "last_modified_time"]

PERMANENT = (
    ews_errors.UnauthorizedError,
    ews_errors.ErrorAccessDenied,
    ews_errors.ErrorImpersonateUserDenied,
    ews_errors.ErrorNonExistentMailbox,
    ews_errors.CASError,
)


def classify(error: Exception) -> SyncError:
    """Turn an exchangelib or network error into the engine's kind of error, in plain words."""
    if isinstance(error, SyncError):
        return error
    if isinstance(error, ews_errors.ErrorServerBusy):
        return TransientError(f"The server is busy (ErrorServerBusy): {error}", back_off=error.back_off)
    if isinstance(error, ews_errors.UnauthorizedError):
        return PermanentError(f"The server refused the credentials (HTTP 401): {error}")
    if isinstance(error, ews_errors.ErrorImpersonateUserDenied):
        return PermanentError(
            f"The service account may not impersonate this mailbox (ErrorImpersonateUserDenied): {error}"
        )
    if isinstance(error, ews_errors.ErrorNonExistentMailbox):
        return PermanentError(f"The server has no such mailbox (ErrorNonExistentMailbox): {error}")
    if isinstance(error, PERMANENT):
        return PermanentError(f"Access denied ({type(error).__name__}): {error}")
    if isinstance(error, ews_errors.ErrorInvalidSyncStateData):
        return InvalidSyncState(f"The server no longer accepts the stored sync state: {error}")
    if isinstance(error, (ews_errors.TransportError, requests.RequestException, OSError)):
        return TransientError(f"The server could not be reached or failed ({type(error).__name__}): {error}")
    return TransientError(f"Unexpected error from the server ({type(error).__name__}): {error}")


def _item_error(error: Exception) -> ItemError:
    return ItemError(f"{type(error).__name__}: {error}", stale=isinstance(error, ews_errors.ErrorIrresolvableConflict))


def configuration(mailbox: Any, timeout: int | None = None) -> tuple[Configuration, str, bool]:
    """exchangelib's configuration for a mailbox: (config, access type, autodiscover)."""
    profile = mailbox.profile
    impersonate = profile.credentials_source == "profile"
    if profile.auth_type == "oauth2":
        credentials: Any = OAuth2Credentials(
            client_id=profile.oauth_client_id,
            client_secret=profile.oauth_client_secret,
            tenant_id=profile.oauth_tenant_id,
            identity=Identity(primary_smtp_address=mailbox.address),
        )
        impersonate = True
    elif impersonate:
        credentials = Credentials(profile.username, profile.password)
    else:
        credentials = Credentials(mailbox.username or mailbox.address, mailbox.password)
    config = Configuration(
        service_endpoint=None if profile.use_autodiscover else profile.ews_url,
        credentials=credentials,
        auth_type=None if profile.auth_type == "oauth2" else (NTLM if profile.auth_type == "ntlm" else BASIC),
        version=VERSION,
        retry_policy=FailFast(),
        max_connections=min(profile.max_concurrent_connections, 10),
    )
    return config, IMPERSONATION if impersonate else DELEGATE, profile.use_autodiscover


class EwsBackend:
    def __init__(self, mailbox: Any) -> None:
        self.address = mailbox.address
        self.timeout = mailbox.profile.timeout_seconds
        self.config, self.access_type, self.autodiscover = configuration(mailbox)
        self._account: Account | None = None
        self._root: Root | None = None
        self._failed = False

    # Connection ---------------------------------------------------------------------------

    @property
    def account(self) -> Account:
        if self._account is None:
            self._account = self._call(
                lambda: Account(
                    primary_smtp_address=self.address,
                    config=None if self.autodiscover else self.config,
                    credentials=self.config.credentials if self.autodiscover else None,
                    autodiscover=self.autodiscover,
                    access_type=self.access_type,
                    default_timezone=EWSTimeZone("UTC"),
                )
            )
            self._account.protocol.TIMEOUT = self.timeout
        return self._account

    def _folder(self, name: str) -> Any:
        """A distinguished folder, without asking the server for it."""
        mailbox = EwsMailbox(email_address=self.address)
        if self._root is None:
            self._root = Root(account=self.account, _distinguished_id=DistinguishedFolderId(id="root", mailbox=mailbox))
        cls = FOLDER_CLASSES[name]
        return cls(
            _distinguished_id=DistinguishedFolderId(id=cls.DISTINGUISHED_FOLDER_ID, mailbox=mailbox), root=self._root
        )

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as error:
            self._failed = True
            raise classify(error) from error

    def close(self) -> None:
        """Keep the cached protocol (its connections serve the next run in this process) unless
        this run failed: then drop it, so that a failure is not cached and re-raised."""
        if self._failed:
            if self._account is not None:
                with contextlib.suppress(Exception):
                    self._account.protocol.close()
            with contextlib.suppress(KeyError):
                del Protocol[self.config]
        self._account = None

    # Test & Enable ------------------------------------------------------------------------

    def check(self) -> None:
        """Authenticate and open the root of the mailbox: one cheap request, failing fast."""
        self._call(lambda: self._folder("inbox").test_access())

    def test_folders(self, folders: tuple[str, ...]) -> None:
        for name in folders:
            try:
                self._call(lambda name=name: self._folder(name).test_access())
            except SyncError as error:
                raise type(error)(f"Could not open the folder “{name}”: {error}") from error

    # Reading ------------------------------------------------------------------------------

    def sync_folder(self, folder: str, state: str) -> FolderChanges:
        fld = self._folder(folder)

        def run() -> list[Change]:
            changes = []
            for kind, item in fld.sync_items(
                sync_state=state or None, only_fields=["changekey"], max_changes_returned=MAX_CHANGES
            ):
                if kind in ("create", "update"):
                    changes.append(Change(CREATED if kind == "create" else UPDATED, item.id, item.changekey or ""))
                elif kind == "delete":
                    changes.append(Change(DELETED, item.id))
            return changes

        changes = self._call(run)
        return FolderChanges(changes=changes, new_state=fld.item_sync_state or "")

    def get_items(self, folder: str, ids: list[str]) -> list[Item]:
        fields = ITEM_FIELDS[folder] + COMMON_FIELDS
        fld = self._folder(folder)
        items = []
        for chunk in _chunks(ids, BATCH):
            fetched = self._call(
                lambda chunk=chunk: list(
                    self.account.fetch(ids=[(i, None) for i in chunk], folder=fld, only_fields=fields)
                )
            )
            for obj in fetched:
                if isinstance(obj, ews_errors.ErrorItemNotFound):
                    continue
                if isinstance(obj, Exception):
                    raise classify(obj)
                items.append(to_item(folder, obj))
        return items

    def find_stamped(self, folder: str, crm_ids: list[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        fld = self._folder(folder)
        fields = ITEM_FIELDS[folder] + COMMON_FIELDS
        for chunk in _chunks(crm_ids, BATCH):
            objs = self._call(lambda chunk=chunk: list(fld.filter(crm_id__in=chunk).only(*fields, "id", "changekey")))
            for obj in objs:
                item = to_item(folder, obj)
                if item.crm_id:
                    found[item.crm_id] = item
        return found

    # Writing ------------------------------------------------------------------------------

    def create_items(self, folder: str, items: list[tuple[str, dict[str, Any]]]) -> list[Result]:
        results: list[Result] = []
        fld = self._folder(folder)
        for chunk in _chunks(items, BATCH):
            built = [
                _built(lambda c=crm_id, v=values: new_item(folder, self.account, fld, c, v)) for crm_id, values in chunk
            ]
            results += self._write(built, lambda objs: self._create(fld, objs))
        return results

    def update_items(self, folder: str, updates: list[tuple[str, str, dict[str, Any], str | None]]) -> list[Result]:
        results: list[Result] = []
        for chunk in _chunks(updates, BATCH):
            built = [_built(lambda u=update: changed_item(folder, self.account, *u)) for update in chunk]
            results += self._write(built, self._update)
        return results

    def _write(self, built: list[Any], send: Callable[[list[Any]], list[Any]]) -> list[Result]:
        """Send one batch. exchangelib checks every item before it sends anything: when it refuses
        one, each is checked alone, and the bad ones fail while the rest are sent."""
        good = [b for b in built if not isinstance(b, ItemError)]
        try:
            answers = send(good) if good else []
        except (ValueError, TypeError):
            built = [_checked(b) for b in built]
            good = [b for b in built if not isinstance(b, ItemError)]
            answers = self._call(lambda: send(good)) if good else []
        except Exception as error:
            self._failed = True
            raise classify(error) from error
        answers = iter(answers)
        return [Result(error=b) if isinstance(b, ItemError) else _result(next(answers)) for b in built]

    def _create(self, fld: Any, objs: list[Any]) -> list[Any]:
        kwargs = {"folder": fld, "message_disposition": "SaveOnly", "send_meeting_invitations": SEND_TO_NONE}
        return list(_CreateItem(account=self.account).call(items=objs, **kwargs))

    def _update(self, pairs: list[Any]) -> list[Any]:
        kwargs = {
            "conflict_resolution": "NeverOverwrite",
            "message_disposition": "SaveOnly",
            "send_meeting_invitations_or_cancellations": SEND_TO_NONE,
            "suppress_read_receipts": True,
        }
        return list(_UpdateItem(account=self.account).call(items=pairs, **kwargs))

    def delete_items(self, folder: str, ids: list[str]) -> list[Result]:
        results: list[Result] = []
        for chunk in _chunks(ids, BATCH):
            answers = self._call(
                lambda chunk=chunk: self.account.bulk_delete(
                    ids=[(i, None) for i in chunk],
                    delete_type="MoveToDeletedItems",
                    send_meeting_cancellations=SEND_TO_NONE,
                )
            )
            for answer in answers:
                if answer is True or isinstance(answer, ews_errors.ErrorItemNotFound):
                    results.append(Result())
                else:
                    results.append(Result(error=_item_error(answer) if isinstance(answer, Exception) else None))
        return results


def _chunks[T](values: list[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _result(answer: Any) -> Result:
    if isinstance(answer, ews_errors.ErrorServerBusy) or isinstance(answer, PERMANENT):
        raise classify(answer)
    if isinstance(answer, Exception):
        return Result(error=_item_error(answer))
    if isinstance(answer, tuple):
        return Result(item_id=answer[0] or "", change_key=answer[1] or "")
    return Result(item_id=getattr(answer, "id", "") or "", change_key=getattr(answer, "changekey", "") or "")


# Items as canonical values, and back ---------------------------------------------------------


def _body_text(obj: Any) -> str:
    text = getattr(obj, "text_body", None)
    return text if text is not None else (obj.body or "")


def _time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return mapping.iso_time(value)
    return mapping.iso_time(datetime(value.year, value.month, value.day, tzinfo=UTC))


def to_item(folder: str, obj: Any) -> Item:
    if folder == "contacts":
        emails = {e.label: e.email for e in obj.email_addresses or []}
        phones = {p.label: p.phone_number for p in obj.phone_numbers or []}
        values = {
            "first_name": obj.given_name,
            "last_name": obj.surname,
            "email": emails.get("EmailAddress1"),
            "job_title": obj.job_title,
            "business_phone": phones.get("BusinessPhone"),
            "mobile_phone": phones.get("MobilePhone"),
            "description": _body_text(obj),
        }
    elif folder == "calendar":
        values = {
            "subject": obj.subject,
            "start": _time(obj.start),
            "end": _time(obj.end),
            "location": obj.location,
            "description": _body_text(obj),
            "attendees": [a.mailbox.email_address for a in obj.required_attendees or [] if a.mailbox],
        }
    else:
        due = obj.due_date
        values = {
            "subject": obj.subject,
            "description": _body_text(obj),
            "due": mapping.iso_date(due) if due else None,
            "status": "completed" if obj.status == "Completed" else "open",
            "priority": (obj.importance or "Normal").lower(),
        }
    modified = obj.last_modified_time.timestamp() if getattr(obj, "last_modified_time", None) else 0.0
    return Item(
        item_id=obj.id,
        change_key=obj.changekey or "",
        values=mapping.normalize(values),
        crm_id=getattr(obj, "crm_id", None) or None,
        categories=list(obj.categories or []),
        uid=getattr(obj, "uid", None),
        modified=modified,
    )


def _ews_time(value: str | None) -> EWSDateTime | None:
    parsed = mapping.parse_time(value)
    return EWSDateTime.from_datetime(parsed) if parsed else None


def _attributes(folder: str, values: dict[str, Any]) -> dict[str, Any]:
    """exchangelib attribute values for canonical values (only the fields given), cut to Exchange's limits."""
    attrs: dict[str, Any] = {}
    values = clip(values)
    for name, value in values.items():
        if name == "description":
            attrs["body"] = Body(value or "")
        elif folder == "contacts":
            if name == "first_name":
                attrs["given_name"] = value or None
            elif name == "last_name":
                attrs["surname"] = value or None
            elif name == "job_title":
                attrs["job_title"] = value or None
            elif name == "email":
                attrs["email_addresses"] = [EmailAddress(label="EmailAddress1", email=value)] if value else None
            elif name in ("business_phone", "mobile_phone"):
                # Both numbers are one property in EWS: the engine always passes both.
                phones = {"BusinessPhone": values.get("business_phone"), "MobilePhone": values.get("mobile_phone")}
                attrs["phone_numbers"] = [PhoneNumber(label=k, phone_number=v) for k, v in phones.items() if v] or None
        elif folder == "calendar":
            if name in ("start", "end"):
                attrs[name] = _ews_time(value)
            elif name == "attendees":
                attrs["required_attendees"] = [Attendee(mailbox=EwsMailbox(email_address=a)) for a in value] or None
            else:
                attrs[name] = value or None
        else:
            if name == "due":
                attrs["due_date"] = date.fromisoformat(value) if value else None
            elif name == "status":
                attrs["status"] = "Completed" if value == "completed" else "NotStarted"
            elif name == "priority":
                attrs["importance"] = (value or "normal").capitalize()
            else:
                attrs[name] = value or None
    return attrs


MODELS = {"contacts": Contact, "calendar": CalendarItem, "tasks": Task}


def new_item(folder: str, account: Account, fld: Any, crm_id: str, values: dict[str, Any]) -> Any:
    attrs = _attributes(folder, {k: v for k, v in values.items() if v not in (None, "", [])})
    if folder == "contacts":
        attrs["display_name"] = _display_name(values)
    return MODELS[folder](account=account, folder=fld, crm_id=crm_id, **attrs)


def changed_item(
    folder: str, account: Account, item_id: str, change_key: str, changes: dict[str, Any], stamp: str | None
) -> tuple[Any, list[str]]:
    attrs = _attributes(folder, changes)
    if folder == "contacts" and ("first_name" in changes or "last_name" in changes):
        attrs["display_name"] = _display_name(changes)
    if stamp:
        attrs["crm_id"] = stamp
    obj = MODELS[folder](account=account, id=item_id, changekey=change_key or None, **attrs)
    for name, value in attrs.items():  # check what is sent as exchangelib will
        obj.get_field_by_fieldname(name).clean(value, version=VERSION)
    return obj, list(attrs)


def _display_name(values: dict[str, Any]) -> str | None:
    return " ".join(p for p in (values.get("first_name"), values.get("last_name")) if p) or None


def _built(build: Callable[[], Any]) -> Any:
    """An item, or the ItemError of one that cannot even be built."""
    try:
        return build()
    except (ValueError, TypeError) as error:
        return ItemError(f"Invalid value: {error}")


def _checked(built: Any) -> Any:
    """The item if exchangelib accepts it, else its ItemError."""
    if isinstance(built, ItemError):
        return built
    try:
        (built[0] if isinstance(built, tuple) else built).clean(version=VERSION)
    except (ValueError, TypeError) as error:
        return ItemError(f"Invalid value: {error}")
    return built
