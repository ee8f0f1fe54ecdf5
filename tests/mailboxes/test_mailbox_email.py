"""The administrator's mailbox page shows the mailbox's tracked folders and its latest ignored messages."""

from __future__ import annotations

from typing import Any

import pytest

from crm.models import Account, Contact, IgnoredMessage, TrackedFolder
from mailboxes.models import Mailbox, Organization
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def ignore(mailbox: Mailbox, n: int, start: int = 0) -> None:
    IgnoredMessage.objects.bulk_create(
        IgnoredMessage(
            mailbox=mailbox,
            source_id=f"item-{i}",
            message_id=f"<ignored-{i}@example.com>",
            subject=f"Ignored {i:03}",
            reason="The message is larger than EMAIL_MAX_BYTES",
        )
        for i in range(start, start + n)
    )


def test_the_mailbox_page_lists_tracked_folders_and_ignored_messages(
    admin: Any, alice: Any, org: Organization, alice_mailbox: Mailbox, other_mailbox: Mailbox
) -> None:
    ann = Contact.objects.create(organization=org, owner=alice, first_name="Ann", last_name="Lee")
    acme = Account.objects.create(organization=org, owner=alice, name="Acme Corp")
    acme.delete()  # soft: the folder still names it, without a link
    TrackedFolder.objects.create(mailbox=alice_mailbox, folder_name="Ann Lee", regarding_contact=ann, folder_id="F-1")
    TrackedFolder.objects.create(
        mailbox=alice_mailbox, folder_name="Acme", regarding_account=acme, last_error="The folder was not found."
    )
    ignore(alice_mailbox, 23)
    ignore(other_mailbox, 2)

    page = client_for(admin).get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()

    folders = page.split('id="tracked-folders"', 1)[1].split("</table>", 1)[0]
    assert f'<a href="{ann.get_absolute_url()}">Contact: Ann Lee</a>' in folders
    assert "Account: Acme Corp" in folders and acme.get_absolute_url() not in folders
    assert "Found" in folders and "Not found yet" in folders
    assert "Last error: The folder was not found." in folders
    assert "my-folder" not in folders and "/remove/" not in folders  # the user's to change
    ignored = page.split('id="ignored-messages"', 1)[1].split("</table>", 1)[0]
    assert ignored.count("<tr>") == 21  # the header and the latest 20
    assert "Ignored 022" in ignored and "Ignored 002" not in ignored
    assert "could not take 23 messages: the latest 20 are listed" in page


def test_a_mailbox_without_any_says_so(admin: Any, alice_mailbox: Mailbox) -> None:
    page = client_for(admin).get(f"/mailboxes/{alice_mailbox.pk}/").content.decode()
    assert 'id="no-tracked-folders"' in page and 'id="no-ignored"' in page


def test_the_mailbox_page_reads_folders_and_ignored_messages_in_a_fixed_number_of_queries(
    admin: Any, alice: Any, org: Organization, alice_mailbox: Mailbox, django_assert_max_num_queries: Any
) -> None:
    client = client_for(admin)
    url = f"/mailboxes/{alice_mailbox.pk}/"
    ann = Contact.objects.create(organization=org, owner=alice, last_name="Lee")
    TrackedFolder.objects.create(mailbox=alice_mailbox, folder_name="F", regarding_contact=ann)
    ignore(alice_mailbox, 1)
    client.get(url)
    with django_assert_max_num_queries(100) as few:
        client.get(url)
    TrackedFolder.objects.bulk_create(
        TrackedFolder(
            mailbox=alice_mailbox,
            folder_name=f"F{n}",
            regarding_account=Account.objects.create(organization=org, owner=alice, name=f"A{n}"),
        )
        for n in range(20)
    )
    ignore(alice_mailbox, 60, start=1)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(url)
    assert len(response.context["tracked_folders"]) == 21
    assert (len(response.context["ignored_messages"]), response.context["ignored_count"]) == (20, 61)
