"""My tracked folders: a person maps folders under their Inbox to CRM records of their organization."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from exchangelib import Folder

from audit.models import AuditEvent
from crm.models import Account, Contact, Email, IgnoredMessage, Lead, TrackedBy, TrackedFolder
from ewsim.testing import RunningSimulator, running_simulator
from mailboxes.models import Channel, Mailbox, Organization, TestStatus, TrackingRule
from syncjobs.engine import run_sync
from syncjobs.jobs import enqueue_sync
from syncjobs.mail.ews import EwsIncoming
from syncjobs.models import RunStatus, Trigger
from tests.conftest import client_for, make_mailbox, make_profile

ADD = reverse("my-folder-add")
LIST = reverse("my-folders")


def key(record: Any) -> str:
    return f"{record._meta.model_name}:{record.pk}"


def add(client: Client, name: str, record: Any, **extra: str) -> Any:
    return client.post(ADD, {"folder_name": name, "regarding": key(record) if record else "", **extra})


@pytest.fixture
def ann(org: Organization, alice: Any) -> Contact:
    return Contact.objects.create(organization=org, owner=alice, first_name="Ann", last_name="Lee")


def errors(response: Any) -> list[str]:
    form = response.context["form"]
    return [message for found in form.errors.values() for message in found]


@pytest.mark.django_db
def test_alice_tracks_a_folder_regarding_her_contact_and_it_is_audited(
    alice_client: Client, alice_mailbox: Mailbox, ann: Contact, alice: Any
) -> None:
    page = alice_client.get(LIST)
    assert page.status_code == 200
    assert f'href="{LIST}"' in page.content.decode()  # in the self-service menu
    assert key(ann) in page.content.decode()  # offered

    response = add(alice_client, "  Acme  ", ann)

    assert response.status_code == 302 and response.url == LIST
    folder = TrackedFolder.objects.get()
    assert (folder.mailbox, folder.folder_name, folder.regarding_contact, folder.folder_id) == (
        alice_mailbox,
        "Acme",
        ann,
        "",
    )
    event = AuditEvent.objects.get(action="mailbox.folder_tracked")
    assert (event.object_id, event.actor, event.organization_id) == (
        str(alice_mailbox.pk),
        alice,
        alice_mailbox.organization_id,
    )
    assert event.changes == {"folder": ["", "Acme"], "regarding": ["", "Contact: Ann Lee"]}
    listed = alice_client.get(LIST).content.decode()
    assert (
        "Acme" in listed
        and ann.get_absolute_url() in listed
        and reverse("my-folder-remove", args=[folder.pk]) in listed
    )
    # My mailbox lists it, and leads to the page.
    mine = alice_client.get(reverse("my-mailbox")).content.decode()
    assert 'id="manage-folders"' in mine and "Acme" in mine


@pytest.mark.django_db
def test_a_folder_regards_an_account_or_a_lead_too(
    alice_client: Client, alice_mailbox: Mailbox, org: Organization, alice: Any
) -> None:
    account = Account.objects.create(organization=org, owner=alice, name="Acme Corp")
    lead = Lead.objects.create(organization=org, owner=alice, last_name="Hopper")
    assert add(alice_client, "Acme", account).status_code == 302
    assert add(alice_client, "Hopper", lead).status_code == 302
    assert {(f.folder_name, f.regarding) for f in TrackedFolder.objects.all()} == {("Acme", account), ("Hopper", lead)}


@pytest.mark.django_db
def test_a_folder_is_tracked_once_whatever_its_case(alice_client: Client, alice_mailbox: Mailbox, ann: Contact) -> None:
    add(alice_client, "Acme", ann)
    response = add(alice_client, "ACME", ann)
    assert response.status_code == 200
    assert errors(response) == ["This folder is tracked already."]
    assert TrackedFolder.objects.count() == 1
    assert AuditEvent.objects.filter(action="mailbox.folder_tracked").count() == 1


@pytest.mark.django_db
def test_a_mailbox_tracks_25_folders_at_most(alice_client: Client, alice_mailbox: Mailbox, ann: Contact) -> None:
    TrackedFolder.objects.bulk_create(
        TrackedFolder(mailbox=alice_mailbox, folder_name=f"F{n}", regarding_contact=ann) for n in range(24)
    )
    assert add(alice_client, "Twenty-five", ann).status_code == 302
    page = alice_client.get(LIST)
    assert 'id="full"' in page.content.decode() and 'id="add-folder"' not in page.content.decode()

    response = add(alice_client, "Twenty-six", ann)

    assert response.status_code == 200
    assert errors(response) == ["A mailbox tracks 25 folders at most: remove one first."]
    assert TrackedFolder.objects.count() == 25


@pytest.mark.django_db
def test_a_record_she_may_not_see_is_refused(
    alice_client: Client, alice_mailbox: Mailbox, org: Organization, bob: Any, outsider: Any, other_org: Organization
) -> None:
    bobs = Contact.objects.create(organization=org, owner=bob, last_name="Bob's")
    elsewhere = Contact.objects.create(organization=other_org, owner=outsider, last_name="Globex")
    page = alice_client.get(LIST).content.decode()
    assert key(bobs) not in page and key(elsewhere) not in page
    for record in (bobs, elsewhere, None):
        response = add(alice_client, "Acme", record)
        assert response.status_code == 200
        assert errors(response), record
    response = alice_client.post(ADD, {"folder_name": "Acme", "regarding": "appointment:1"})
    assert errors(response) == ["Choose one of the records of your organization that you may see."]
    assert not TrackedFolder.objects.exists()
    assert not AuditEvent.objects.filter(action="mailbox.folder_tracked").exists()


@pytest.mark.django_db
def test_an_administrator_may_choose_any_record_of_the_mailbox_organization(
    org: Organization, admin: Any, alice: Any, profile: Any
) -> None:
    mailbox = make_mailbox(org, admin, "admin@example.com", profile)
    alices = Contact.objects.create(organization=org, owner=alice, last_name="Alice's")
    assert add(client_for(admin), "Acme", alices).status_code == 302
    assert TrackedFolder.objects.get().mailbox == mailbox


@pytest.mark.django_db
def test_the_folder_name_follows_what_the_server_can_find(
    alice_client: Client, alice_mailbox: Mailbox, ann: Contact, org: Organization
) -> None:
    # Exchange: a folder directly under the Inbox, by its name; never the Inbox itself.
    response = add(alice_client, "Projects/Acme", ann)
    assert errors(response) == [
        "Exchange tracks folders directly under your Inbox: enter the folder's name, without a path."
    ]
    assert errors(add(alice_client, "inbox", ann)) == [
        "The Inbox follows your tracking rule: choose a folder under it."
    ]
    assert errors(add(alice_client, "", ann)) == ["This field is required."]
    # IMAP: the folder's full name.
    alice_mailbox.profile = make_profile(org, "IMAP", kind="imap_smtp", ews_url="", incoming_host="imap.example.com")
    alice_mailbox.save()
    assert add(alice_client, "Projects/Acme", ann).status_code == 302
    # POP3 reads the Inbox only.
    alice_mailbox.profile = make_profile(org, "POP3", kind="pop3_smtp", ews_url="", incoming_host="pop.example.com")
    alice_mailbox.save()
    page = alice_client.get(LIST).content.decode()
    assert 'id="unsupported"' in page and 'id="add-folder"' not in page
    response = add(alice_client, "Other", ann)
    assert response.status_code == 302 and TrackedFolder.objects.count() == 1


@pytest.mark.django_db
def test_the_search_narrows_the_records_offered(
    alice_client: Client, alice_mailbox: Mailbox, org: Organization, alice: Any
) -> None:
    ada = Contact.objects.create(organization=org, owner=alice, first_name="Ada", last_name="Lovelace")
    grace = Contact.objects.create(organization=org, owner=alice, first_name="Grace", last_name="Hopper")
    page = alice_client.get(LIST, {"q": "ada love"}).content.decode()
    assert key(ada) in page and key(grace) not in page
    # A record found by a search stays chosen when the form comes back with an error.
    response = alice_client.post(ADD, {"folder_name": "inbox", "regarding": key(grace), "q": "ada"})
    assert key(grace) in response.content.decode()
    assert alice_client.get(LIST, {"q": "nobody"}).content.decode().count('id="no-records"') == 1


@pytest.mark.django_db
def test_removing_asks_then_stops_tracking_and_is_audited(
    alice_client: Client, alice_mailbox: Mailbox, ann: Contact, alice: Any
) -> None:
    add(alice_client, "Acme", ann)
    folder = TrackedFolder.objects.get()
    url = reverse("my-folder-remove", args=[folder.pk])

    page = alice_client.get(url)
    assert page.status_code == 200 and "Contact: Ann Lee" in page.content.decode()
    assert TrackedFolder.objects.exists()

    response = alice_client.post(url)

    assert response.status_code == 302 and response.url == LIST
    assert not TrackedFolder.objects.exists()
    event = AuditEvent.objects.get(action="mailbox.folder_untracked")
    assert (event.object_id, event.actor) == (str(alice_mailbox.pk), alice)
    assert event.changes == {"folder": ["Acme", ""], "regarding": ["Contact: Ann Lee", ""]}
    assert alice_client.post(url).status_code == 404


@pytest.mark.django_db
def test_someone_elses_folder_is_not_found(
    alice_client: Client, bob_mailbox: Mailbox, other_mailbox: Mailbox, org: Organization, bob: Any, admin: Any
) -> None:
    bobs = TrackedFolder.objects.create(
        mailbox=bob_mailbox,
        folder_name="Bob's",
        regarding_contact=Contact.objects.create(organization=org, owner=bob, last_name="B"),
    )
    theirs = TrackedFolder.objects.create(
        mailbox=other_mailbox,
        folder_name="Globex",
        regarding_contact=Contact.objects.create(
            organization=other_mailbox.organization, owner=other_mailbox.user, last_name="G"
        ),
    )
    for folder in (bobs, theirs):
        url = reverse("my-folder-remove", args=[folder.pk])
        for client in (alice_client, client_for(admin)):  # an administrator removes none either
            assert client.get(url).status_code == 404
            assert client.post(url).status_code == 404
    assert TrackedFolder.objects.count() == 2
    assert not AuditEvent.objects.filter(action__startswith="mailbox.folder_").exists()


@pytest.mark.django_db
def test_without_a_mailbox_the_page_says_so(alice_client: Client, ann: Contact) -> None:
    page = alice_client.get(LIST)
    assert page.status_code == 200 and 'id="no-mailbox"' in page.content.decode()
    assert add(alice_client, "Acme", ann).status_code == 404
    assert alice_client.get(ADD).status_code == 405


@pytest.mark.django_db
def test_my_mailbox_shows_the_latest_ignored_messages_and_their_count(
    alice_client: Client, alice_mailbox: Mailbox, bob_mailbox: Mailbox, django_assert_max_num_queries: Any
) -> None:
    IgnoredMessage.objects.bulk_create(
        IgnoredMessage(
            mailbox=alice_mailbox,
            source_id=f"item-{n}",
            message_id=f"<m{n}@example.com>",
            subject=f"Subject {n:02}",
            reason=f"Malformed MIME {n:02}",
        )
        for n in range(25)
    )
    IgnoredMessage.objects.create(mailbox=bob_mailbox, source_id="x", subject="Bob's ignored", reason="Too large")
    with django_assert_max_num_queries(30):
        page = alice_client.get(reverse("my-mailbox")).content.decode()
    assert "the latest 20 are listed" in page and "could not take 25 messages" in page
    assert page.count("Malformed MIME") == 20
    assert "Subject 24" in page and "&lt;m24@example.com&gt;" in page
    assert "Bob's ignored" not in page


@pytest.mark.django_db
def test_my_mailbox_without_ignored_messages_says_so(alice_client: Client, alice_mailbox: Mailbox) -> None:
    page = alice_client.get(reverse("my-mailbox")).content.decode()
    assert 'id="no-ignored"' in page and 'id="no-tracked-folders"' in page


# The channel finds the folder the page saved: over EWS by its name under the Inbox, whatever its case.

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    with running_simulator() as sim:
        yield sim


@pytest.mark.django_db(transaction=True)
def test_a_folder_tracked_on_the_page_is_read_by_the_incoming_run(
    simulator: RunningSimulator, rq_queues: str, org: Organization, alice: Any, ann: Contact
) -> None:
    simulator.control.reset()
    simulator.control.create_mailbox("svc@example.com", "svc-pw", can_impersonate=True)
    simulator.control.create_mailbox(ALICE, "pw")
    profile = make_profile(org, "Simulator", ews_url=simulator.ews_url, username="svc@example.com", password="svc-pw")
    mailbox = make_mailbox(org, alice, ALICE, profile, tracking_rule=TrackingRule.NONE)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status="approved",
        test_incoming=TestStatus.SUCCESS,
        test_overall=TestStatus.SUCCESS,
        enabled_incoming=True,
    )
    backend = EwsIncoming(mailbox)
    try:
        Folder(parent=backend.account.inbox, name="Ann Lee").save()
    finally:
        backend.close()
    assert add(client_for(alice), "ann lee", ann).status_code == 302
    message = (
        b"From: x@y.example\r\nTo: alice@example.com\r\nSubject: Filed\r\nMessage-ID: <f1@y.example>\r\n\r\nHi\r\n"
    )
    simulator.control.add_mime(ALICE, "Ann Lee", message)

    done = run_sync(enqueue_sync(mailbox, Channel.INCOMING, Trigger.MANUAL).pk)

    assert done is not None and done.status == RunStatus.SUCCEEDED, done and done.error
    email = Email.objects.get()
    assert (email.subject, email.tracked_by, email.regarding_contact) == ("Filed", TrackedBy.FOLDER, ann)
