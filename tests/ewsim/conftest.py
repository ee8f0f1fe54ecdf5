"""Fixtures for the ewsim suite: a fresh simulator per test and exchangelib accounts against it.

No Django here: these tests run the same with or without pytest-django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    Account,
    CalendarItem,
    Configuration,
    Contact,
    Credentials,
    ExtendedProperty,
    FailFast,
    Message,
    Task,
    Version,
)
from exchangelib.fields import InvalidField
from exchangelib.protocol import RetryPolicy, close_connections
from exchangelib.version import EXCHANGE_2016

from ewsim.testing import RunningSimulator, running_simulator

PASSWORD = "s3cret"
ALICE = "alice@example.com"
BOB = "bob@example.com"
SERVICE = "svc@example.com"


class CrmId(ExtendedProperty):
    """How the portal stamps its CRM id on items: a named string property in a private property set."""

    property_set_id = "8b4e2a51-5c1e-4d7c-9a37-2f6d2a0c9e11"
    property_name = "CrmId"
    property_type = "String"


class CrmRevision(ExtendedProperty):
    property_set_id = "8b4e2a51-5c1e-4d7c-9a37-2f6d2a0c9e11"
    property_name = "CrmRevision"
    property_type = "Integer"


ITEM_CLASSES = (Message, CalendarItem, Contact, Task)


@pytest.fixture(scope="package", autouse=True)
def crm_properties() -> Iterator[None]:
    """Our crm_id/crm_revision on the item classes while this package's tests run. exchangelib's
    registry is process-wide and the portal registers its own crm_id when Django starts, so that one is
    set aside and put back afterwards."""
    replaced: list[tuple[type, str, type | None]] = []
    for cls in ITEM_CLASSES:
        for name, prop in (("crm_id", CrmId), ("crm_revision", CrmRevision)):
            try:
                previous = cls.get_field_by_fieldname(name).value_cls
                cls.deregister(name)
            except InvalidField:
                previous = None
            cls.register(name, prop)
            replaced.append((cls, name, previous))
    yield
    for cls, name, previous in reversed(replaced):
        cls.deregister(name)
        if previous is not None:
            cls.register(name, previous)


@pytest.fixture(autouse=True)
def _no_pool_leaks() -> Iterator[None]:
    # exchangelib keeps a session pool per endpoint; each test has its own server, so drop them.
    yield
    close_connections()


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator() as running:
        running.control.create_mailbox(ALICE, PASSWORD)
        running.control.create_mailbox(BOB, PASSWORD)
        running.control.create_mailbox(SERVICE, PASSWORD, can_impersonate=True)
        yield running


AccountFactory = Callable[..., Account]


@pytest.fixture
def make_account(sim: RunningSimulator) -> AccountFactory:
    def factory(
        address: str = ALICE,
        user: str | None = None,
        password: str = PASSWORD,
        impersonate: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> Account:
        config = Configuration(
            service_endpoint=sim.ews_url,
            credentials=Credentials(user or address, password),
            auth_type=BASIC,
            version=Version(build=EXCHANGE_2016),
            retry_policy=retry_policy or FailFast(),
            max_connections=4,
        )
        return Account(
            primary_smtp_address=address,
            config=config,
            autodiscover=False,
            access_type=IMPERSONATION if impersonate else DELEGATE,
        )

    return factory


@pytest.fixture
def alice(make_account: AccountFactory) -> Account:
    return make_account(ALICE)


@pytest.fixture
def bob(make_account: AccountFactory) -> Account:
    return make_account(BOB)


def soap_post(
    sim: RunningSimulator, user: str, operation_xml: str, password: str = PASSWORD, header_xml: str = ""
) -> tuple[int, bytes]:
    """POST a raw SOAP request (for what exchangelib never sends, or sends only when it is broken)."""
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f"<s:Header>{header_xml}</s:Header><s:Body>{operation_xml}</s:Body></s:Envelope>"
    )
    resp = requests.post(
        sim.ews_url,
        data=envelope.encode(),
        auth=(user, password),
        timeout=30,
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    return resp.status_code, resp.content
