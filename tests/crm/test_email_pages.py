"""CRM email pages: the list, an email's page, compose and reply, the "track" action, the queues,
the emails of a record's page, and the forward mailbox's "delete after processing" field."""

from __future__ import annotations

import datetime
import re
import threading
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.log import Actor
from audit.models import AuditEvent
from crm.email_actions import NotADraft, save_outgoing
from crm.email_views import RECORD_EMAILS
from crm.models import (
    Email,
    EmailReceipt,
    EmailRecipient,
    EmailStatus,
    QueueItem,
    QueueItemStatus,
    RecipientKind,
    TrackedBy,
)
from ewsim.testing import running_simulator
from mailboxes.models import ApprovalStatus, Mailbox, Organization, OwnerType, TestStatus
from syncjobs.engine import run_sync
from syncjobs.mail.outgoing import build_message
from syncjobs.mail.parse import parse
from syncjobs.models import SyncRun
from tests.conftest import PASSWORD, client_for, make_mailbox, make_profile
from tests.crm.test_views import make_record
from tests.mailboxes.test_forms_ux import page
from tests.mailboxes.test_mailboxes import mailbox_data

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)

MALICIOUS = b"""From: Mallory <mallory@evil.example>
To: alice@example.com
Subject: Invoice
Message-ID: <evil-1@evil.example>
Date: Mon, 02 Mar 2026 09:00:00 +0000
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<p>Please pay <b>now</b>.</p><script>document.title = "pwned"</script><img src="x" onerror="alert(1)">
<a href="javascript:alert(2)">details</a>
"""


def make_email(org: Organization, owner: Any, subject: str = "Hello", **fields: Any) -> Email:
    values: dict[str, Any] = {
        "direction": "incoming",
        "status": EmailStatus.RECEIVED,
        "sender": "ada@northwind.example",
        "sender_name": "Ada Lovelace",
        "to": [{"address": "alice@example.com", "name": "Alice"}],
        "received_at": NOW,
        "tracked_by": TrackedBy.RULE_ALL,
        **fields,
    }
    return Email.objects.create(organization=org, owner=owner, subject=subject, **values)


def ready_to_send(mailbox: Mailbox) -> Mailbox:
    """The mailbox's outgoing channel works: approved, tested, enabled."""
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED, test_outgoing=TestStatus.SUCCESS, enabled_outgoing=True
    )
    mailbox.refresh_from_db()
    return mailbox


def subjects(response: Any) -> list[str]:
    return [email.subject for email, _to in response.context["rows"]]


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def queue(org: Organization, profile: Any) -> Mailbox:
    return make_mailbox(org, None, "support@example.com", profile, owner_type=OwnerType.QUEUE, queue_name="Support")


@pytest.fixture
def contact(org: Organization, alice: Any) -> Any:
    return make_record("contact", org, alice, email="ada@northwind.example")


# The list: who sees what


def test_members_see_the_emails_the_record_rules_give_them(
    org: Organization,
    other_org: Organization,
    admin: Any,
    alice: Any,
    bob: Any,
    outsider: Any,
    alice_mailbox: Mailbox,
    queue: Mailbox,
) -> None:
    make_email(org, alice, "Alice's own")
    make_email(org, bob, "Bob's own")
    received_too = make_email(org, bob, "Bob's, in alice's mailbox too")
    EmailReceipt.objects.create(email=received_too, mailbox=alice_mailbox)
    queued = make_email(org, admin, "In the support queue")
    QueueItem.objects.create(queue=queue, email=queued)
    make_email(other_org, outsider, "Globex")
    make_email(org, alice, "Deleted").delete()

    assert set(subjects(client_for(admin).get("/crm/emails/"))) == {
        "Alice's own",
        "Bob's own",
        "Bob's, in alice's mailbox too",
        "In the support queue",
    }
    assert set(subjects(client_for(alice).get("/crm/emails/"))) == {
        "Alice's own",
        "Bob's, in alice's mailbox too",
        "In the support queue",
    }
    assert set(subjects(client_for(outsider).get("/crm/emails/"))) == {"Globex"}


@pytest.mark.parametrize("persona", ["approver", "auditor"])
def test_roles_without_crm_records_are_refused(request: pytest.FixtureRequest, persona: str) -> None:
    client = client_for(request.getfixturevalue(persona))
    assert client.get("/crm/emails/").status_code == 403
    assert client.get("/crm/queues/").status_code == 403


def test_the_list_is_newest_first_with_readable_labels(org: Organization, alice: Any, settings: Any) -> None:
    settings.PAGE_SIZE = 2
    make_email(org, alice, "Old", received_at=NOW - datetime.timedelta(days=3))
    make_email(
        org,
        alice,
        "Sent yesterday",
        direction="outgoing",
        status="sent",
        received_at=None,
        sent_at=NOW - datetime.timedelta(days=1),
    )
    make_email(org, alice, "Draft now", direction="outgoing", status="draft", received_at=None)
    client = client_for(alice)

    first = client.get("/crm/emails/")
    second = client.get("/crm/emails/?page=2")

    assert subjects(first) == ["Draft now", "Sent yesterday"]
    assert subjects(second) == ["Old"]
    html = first.content.decode()
    assert "Draft" in html and "Outgoing" in html and "Sent" in html
    assert "3 emails" in html


def test_search_finds_subject_sender_recipient_and_text(org: Organization, alice: Any) -> None:
    make_email(org, alice, "Quarterly figures")
    make_email(org, alice, "From Grace", sender="grace@navy.example", sender_name="Grace Hopper")
    to_linus = make_email(org, alice, "To Linus")
    EmailRecipient.objects.create(email=to_linus, kind=RecipientKind.TO, address="linus@kernel.example", name="Linus")
    make_email(org, alice, "Body", body_text="The compiler is ready.")
    client = client_for(alice)

    def found(q: str) -> list[str]:
        return subjects(client.get("/crm/emails/", {"q": q}))

    assert found("quarterly") == ["Quarterly figures"]
    assert found("hopper") == ["From Grace"]
    assert found("kernel.example") == ["To Linus"]
    assert found("compiler ready") == ["Body"]
    assert found("nothing-like-this") == []


def test_filters_by_direction_status_mailbox_regarding_and_date(
    org: Organization, alice: Any, alice_mailbox: Mailbox, contact: Any
) -> None:
    old = make_email(org, alice, "March", received_at=datetime.datetime(2026, 3, 2, 12, tzinfo=datetime.UTC))
    make_email(org, alice, "Failed", direction="outgoing", status="failed", mailbox=alice_mailbox)
    about = make_email(org, alice, "About Ada", regarding_contact=contact)
    EmailReceipt.objects.create(email=about, mailbox=alice_mailbox)
    client = client_for(alice)

    def found(**filters: Any) -> set[str]:
        return set(subjects(client.get("/crm/emails/", filters)))

    assert found(direction="outgoing") == {"Failed"}
    assert found(status="failed") == {"Failed"}
    assert found(status="received") == {"March", "About Ada"}
    assert found(mailbox=alice_mailbox.pk) == {"Failed", "About Ada"}
    assert found(regarding="contact") == {"About Ada"}
    assert found(regarding="none") == {"March", "Failed"}
    assert found(regarding="lead") == set()
    assert found(since="2026-03-01", until="2026-03-02") == {old.subject}
    assert found(since=(NOW + datetime.timedelta(days=2)).date().isoformat()) == set()
    assert found(status="no-such-status") == {"March", "Failed", "About Ada"}  # ignored, not fatal


# An email's page


def test_a_script_in_a_message_body_never_reaches_the_page(org: Organization, alice: Any) -> None:
    parsed = parse(MALICIOUS)
    email = make_email(org, alice, parsed.subject, body_html=parsed.body_html, message_id=parsed.message_id)
    client = client_for(alice)

    page_html = client.get(f"/crm/emails/{email.pk}/").content.decode()
    body = client.get(f"/crm/emails/{email.pk}/body/")
    body_html = body.content.decode()

    # The page holds no part of the message's HTML, only a sandboxed frame for it.
    assert "Please pay" not in page_html
    assert re.search(rf'<iframe [^>]*sandbox src="/crm/emails/{email.pk}/body/"', page_html)
    # The frame's document: the sanitized body, under a policy that allows no script at all.
    assert "Please pay <b>now</b>" in body_html
    for bad in ("<script", "pwned", "onerror", "javascript:"):
        assert bad not in body_html.lower()
    policy = body["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy and "script-src" not in policy
    assert body["X-Frame-Options"] == "SAMEORIGIN"


def test_a_text_email_shows_its_text_and_headers(org: Organization, alice: Any) -> None:
    email = make_email(
        org,
        alice,
        "Plain",
        body_text="Line one\n<b>not bold</b>",
        message_id="<m2@northwind.example>",
        in_reply_to="<m1@example.com>",
        cc=[{"address": "bob@example.com", "name": ""}],
    )
    html = client_for(alice).get(f"/crm/emails/{email.pk}/").content.decode()

    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    assert "<iframe" not in html
    for text in ("Ada Lovelace &lt;ada@northwind.example&gt;", "Alice &lt;alice@example.com&gt;", "bob@example.com"):
        assert text in html
    assert "&lt;m2@northwind.example&gt;" in html and "&lt;m1@example.com&gt;" in html
    assert "Tracking rule: all email messages" in html


def test_recipients_link_to_the_records_the_reader_may_open(
    org: Organization, alice: Any, bob: Any, contact: Any, alice_mailbox: Mailbox
) -> None:
    bobs_lead = make_record("lead", org, bob, email="grace@navy.example")
    email = make_email(org, alice, "Hello", regarding_contact=contact)
    EmailRecipient.objects.create(
        email=email, kind=RecipientKind.FROM, address="ada@northwind.example", contact=contact
    )
    EmailRecipient.objects.create(email=email, kind=RecipientKind.TO, address="alice@example.com", user=alice)
    EmailRecipient.objects.create(email=email, kind=RecipientKind.CC, address="grace@navy.example", lead=bobs_lead)
    EmailRecipient.objects.create(email=email, kind=RecipientKind.CC, address="nobody@else.example")
    EmailReceipt.objects.create(email=email, mailbox=alice_mailbox, folder="inbox")

    html = client_for(alice).get(f"/crm/emails/{email.pk}/").content.decode()

    table = html.split('id="recipients"', 1)[1].split("</table>", 1)[0]
    assert f'Contact: <a href="/crm/contacts/{contact.pk}/">Ada Lovelace</a>' in table
    assert "Portal user: Alice" in table
    assert "/crm/leads/" not in table and "Grace" not in table  # bob's lead: not hers to open
    assert "not found in the CRM" in table
    assert f'<a href="/crm/contacts/{contact.pk}/">Ada Lovelace</a>' in html.split('id="regarding"', 1)[1]
    receipts = html.split('id="receipts"', 1)[1].split("</table>", 1)[0]
    assert "alice@example.com" in receipts and "/mailboxes/" not in receipts  # admins only


def test_an_outgoing_email_shows_its_status_and_reason(org: Organization, alice: Any, alice_mailbox: Mailbox) -> None:
    failed = make_email(
        org,
        alice,
        "Offer",
        direction="outgoing",
        status="failed",
        status_reason="550 5.1.1 The recipient does not exist",
        send_attempts=1,
        mailbox=alice_mailbox,
        tracked_by=TrackedBy.SENT_FROM_CRM,
    )
    pending = make_email(org, alice, "Offer 2", direction="outgoing", status="pending_send", mailbox=alice_mailbox)
    client = client_for(alice)

    html = client.get(f"/crm/emails/{failed.pk}/").content.decode()
    assert "Failed" in html and "550 5.1.1 The recipient does not exist" in html and "Sent from the CRM" in html
    assert 'data-live="false"' in html and "hx-get" not in html
    # While it is on its way the status box asks again, until it is sent.
    html = client.get(f"/crm/emails/{pending.pk}/").content.decode()
    assert f'hx-get="/crm/emails/{pending.pk}/status/"' in html and "Pending send" in html
    Email.objects.filter(pk=pending.pk).update(status=EmailStatus.SENT, sent_at=NOW)
    fragment = client.get(f"/crm/emails/{pending.pk}/status/").content.decode()
    assert 'data-live="false"' in fragment and "Sent" in fragment and "hx-get" not in fragment


def test_the_conversation_lists_the_other_emails_of_the_thread(org: Organization, alice: Any) -> None:
    first = make_email(org, alice, "Question", message_id="<q@x>", conversation_id="thread-1")
    answer = make_email(org, alice, "Re: Question", message_id="<a@y>", in_reply_to="<q@x>")
    make_email(org, alice, "Same thread", message_id="<s@x>", conversation_id="thread-1")
    make_email(org, alice, "Unrelated", message_id="<u@x>")

    response = client_for(alice).get(f"/crm/emails/{first.pk}/")
    assert [email.subject for email, _to in response.context["conversation"]] == ["Re: Question", "Same thread"]
    response = client_for(alice).get(f"/crm/emails/{answer.pk}/")
    assert [email.subject for email, _to in response.context["conversation"]] == ["Question"]


def test_emails_of_others_are_hidden_and_roles_refused(
    org: Organization, alice: Any, bob: Any, outsider: Any, approver: Any
) -> None:
    email = make_email(org, alice, "Private")
    for path in ("", "body/", "status/", "reply/", "edit/"):
        url = f"/crm/emails/{email.pk}/{path}"
        assert client_for(bob).get(url).status_code == 404, url
        assert client_for(outsider).get(url).status_code == 404, url
        assert client_for(approver).get(url).status_code == 403, url
    assert client_for(bob).post(f"/crm/emails/{email.pk}/track/").status_code == 404
    assert client_for(outsider).post(f"/crm/emails/{email.pk}/track/").status_code == 404


# Compose, send, drafts


def test_without_a_mailbox_compose_says_what_to_do(alice: Any) -> None:
    response = client_for(alice).get("/crm/emails/new/")
    html = response.content.decode()
    assert "You have no mailbox to send from. Set one up under My mailbox." in html
    assert response.context["form"] is None
    assert client_for(alice).post("/crm/emails/new/", {"to": "ada@x.example", "send": "1"}).status_code == 200
    assert not Email.objects.exists()


def test_sending_needs_a_working_outgoing_channel_but_a_draft_does_not(
    org: Organization, alice: Any, alice_mailbox: Mailbox
) -> None:
    client = client_for(alice)
    data = {"to": "Ada Lovelace <ada@northwind.example>", "subject": "Offer", "body_text": "Hi Ada"}

    response = client.post("/crm/emails/new/", {**data, "send": "1"})

    assert response.status_code == 200
    [error] = response.context["form"].non_field_errors()
    assert "not approved" in error and "Wait until an administrator approves your address." in error
    assert response.context["form"]["body_text"].value() == "Hi Ada"  # nothing lost
    assert not Email.objects.exists()

    response = client.post("/crm/emails/new/", {**data, "draft": "1"})
    assert not SyncRun.objects.exists()  # a draft waits
    draft = Email.objects.get()
    assert response.url == f"/crm/emails/{draft.pk}/"
    assert (draft.status, draft.direction, draft.mailbox, draft.owner) == ("draft", "outgoing", alice_mailbox, alice)
    assert draft.to == [{"address": "ada@northwind.example", "name": "Ada Lovelace"}]
    [event] = events("email.draft_saved")
    assert (event.actor, event.object_id, event.changes["subject"]) == (alice, str(draft.pk), ["", "Offer"])


def test_a_client_mailbox_is_told_to_choose_server_side(org: Organization, alice: Any, alice_mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(outgoing_method="client")
    html = client_for(alice).get("/crm/emails/new/").content.decode()
    assert "outgoing email: Client (desktop)" in html and "Server-side synchronization" in html


def test_send_sets_pending_send_and_is_audited(
    org: Organization, alice: Any, alice_mailbox: Mailbox, contact: Any
) -> None:
    ready_to_send(alice_mailbox)
    client = client_for(alice)
    form = client.get(f"/crm/emails/new/?regarding=contact:{contact.pk}&to=ada@northwind.example").context["form"]
    assert form["to"].value() == "ada@northwind.example"
    assert form["regarding"].value() == f"contact:{contact.pk}"

    response = client.post(
        "/crm/emails/new/",
        {
            "to": "ada@northwind.example; Bob <BOB@example.com>, ada@northwind.example",
            "cc": "",
            "subject": "  Offer ",
            "body_text": "Hi Ada",
            "regarding": f"contact:{contact.pk}",
            "send": "1",
        },
    )

    email = Email.objects.get()
    assert response.url == f"/crm/emails/{email.pk}/"
    assert email.status == EmailStatus.PENDING_SEND
    assert email.to == [
        {"address": "ada@northwind.example", "name": ""},
        {"address": "bob@example.com", "name": "Bob"},
    ]
    assert (email.subject, email.regarding, email.sender, email.tracked_by) == (
        "Offer",
        contact,
        "alice@example.com",
        TrackedBy.SENT_FROM_CRM,
    )
    [event] = events("email.send_requested")
    assert event.changes["to"] == ["", "ada@northwind.example, Bob <bob@example.com>"]
    assert event.changes["status"] == ["", "pending_send"]
    # The outgoing run of alice's mailbox is asked for now, not at the scheduler's next pass.
    [run] = SyncRun.objects.all()
    assert (run.mailbox, run.channel, run.trigger, run.status, run.requested_by) == (
        alice_mailbox,
        "outgoing",
        "manual",
        "queued",
        alice,
    )


def test_bad_addresses_are_field_errors(org: Organization, alice: Any, alice_mailbox: Mailbox) -> None:
    ready_to_send(alice_mailbox)
    client = client_for(alice)

    response = client.post("/crm/emails/new/", {"to": "ada@ok.example, nope, x@", "cc": "a b", "send": "1"})
    errors = response.context["form"].errors
    assert errors["to"] == ["Not an email address: nope, x@"]
    assert errors["cc"] == ["Not an email address: a b"]
    response = client.post("/crm/emails/new/", {"to": "", "subject": "No one", "send": "1"})
    assert response.context["form"].errors["to"] == ["Enter at least one recipient to send the email."]
    assert not Email.objects.exists()


def test_a_record_the_user_may_not_see_cannot_be_regarded(
    org: Organization, alice: Any, bob: Any, alice_mailbox: Mailbox
) -> None:
    bobs = make_record("contact", org, bob)
    client = client_for(alice)

    for key in (f"contact:{bobs.pk}", "contact:not-a-key", f"task:{bobs.pk}", "nonsense"):
        form = client.get("/crm/emails/new/", {"regarding": key}).context["form"]
        assert [value for value, _label in form.fields["regarding"].choices] == [""]
    response = client.post("/crm/emails/new/", {"to": "x@example.com", "regarding": f"contact:{bobs.pk}", "draft": "1"})
    assert "regarding" in response.context["form"].errors
    assert not Email.objects.exists()


def test_a_reply_is_threaded_and_keeps_what_the_email_regards(
    org: Organization, alice: Any, alice_mailbox: Mailbox, contact: Any
) -> None:
    ready_to_send(alice_mailbox)
    original = make_email(
        org,
        alice,
        "Prices",
        message_id="<p2@northwind.example>",
        references="<p0@example.com> <p1@example.com>",
        conversation_id="thread-9",
        regarding_contact=contact,
    )
    client = client_for(alice)

    form = client.get(f"/crm/emails/{original.pk}/reply/").context["form"]
    assert form["to"].value() == "Ada Lovelace <ada@northwind.example>"
    assert form["subject"].value() == "Re: Prices"
    assert form["regarding"].value() == f"contact:{contact.pk}"

    data = {
        "to": form["to"].value(),
        "subject": "Re: Prices",
        "body_text": "Thanks",
        "regarding": form["regarding"].value(),
    }
    client.post(f"/crm/emails/{original.pk}/reply/", {**data, "send": "1"})

    reply = Email.objects.exclude(pk=original.pk).get()
    assert reply.in_reply_to == "<p2@northwind.example>"
    assert reply.references == "<p0@example.com> <p1@example.com> <p2@northwind.example>"
    assert (reply.conversation_id, reply.regarding, reply.status) == ("thread-9", contact, "pending_send")
    # As the outgoing channel will send it:
    reply.message_id, reply.tracking_number = "<r@example.com>", 1001
    message = build_message(reply, alice_mailbox)
    assert message["In-Reply-To"] == "<p2@northwind.example>"
    assert message["References"] == "<p0@example.com> <p1@example.com> <p2@northwind.example>"
    assert (message["To"], message["Subject"]) == ("Ada Lovelace <ada@northwind.example>", "Re: Prices CRM:1001")
    # Replying to the reply does not stack the prefix.
    Email.objects.filter(pk=reply.pk).update(status=EmailStatus.SENT)
    assert client.get(f"/crm/emails/{reply.pk}/reply/").context["form"]["subject"].value() == "Re: Prices"


def test_a_draft_is_edited_and_sent_by_its_author_only(
    org: Organization, admin: Any, alice: Any, alice_mailbox: Mailbox
) -> None:
    ready_to_send(alice_mailbox)
    draft = make_email(org, alice, "Draft", direction="outgoing", status="draft", mailbox=alice_mailbox, to=[])
    client = client_for(alice)

    assert client_for(admin).get(f"/crm/emails/{draft.pk}/edit/").status_code == 403
    client.post(f"/crm/emails/{draft.pk}/edit/", {"to": "ada@x.example", "subject": "Final", "send": "1"})

    draft.refresh_from_db()
    assert (draft.subject, draft.status) == ("Final", "pending_send")
    assert events("email.send_requested")[0].changes["status"] == ["draft", "pending_send"]
    response = client.get(f"/crm/emails/{draft.pk}/edit/")
    assert response.url == f"/crm/emails/{draft.pk}/"  # no longer a draft


def test_a_compose_form_submitted_twice_makes_one_email_sent_once(
    org: Organization, alice: Any, bob: Any, alice_mailbox: Mailbox
) -> None:
    ready_to_send(alice_mailbox)
    client = client_for(alice)
    key = client.get("/crm/emails/new/").context["form"]["key"].value()
    data = {"key": key, "to": "ada@northwind.example", "subject": "Offer", "body_text": "Hi"}

    # Saved as a draft, then (the back button) sent from the same form: one email, the draft sent.
    assert client.post("/crm/emails/new/", {**data, "draft": "1"}).status_code == 302
    first = client.post("/crm/emails/new/", {**data, "subject": "Final offer", "send": "1"})
    email = Email.objects.get()
    assert (str(email.pk), email.subject, email.status) == (key, "Final offer", EmailStatus.PENDING_SEND)
    assert first.url == f"/crm/emails/{email.pk}/"

    # Sent again (a double click): refused in words, with the typed text kept; nothing changes.
    again = client.post("/crm/emails/new/", {**data, "subject": "Changed", "send": "1"})
    assert again.status_code == 200
    assert again.context["form"].non_field_errors() == [
        "This email is no longer a draft (it is “Pending send”): your changes were not saved. "
        "Open the email to see where it is."
    ]
    assert again.context["form"]["subject"].value() == "Changed"
    email.refresh_from_db()
    assert (Email.objects.count(), email.subject, email.status) == (1, "Final offer", EmailStatus.PENDING_SEND)
    assert len(events("email.send_requested")) == 1 and SyncRun.objects.count() == 1
    # Another user's email id in the form is not found (404: its existence is not revealed).
    make_mailbox(org, bob, "bob@example.com", alice_mailbox.profile)
    assert client_for(bob).post("/crm/emails/new/", {**data, "draft": "1"}).status_code == 404
    assert Email.objects.get().subject == "Final offer"


@pytest.mark.parametrize("status", [EmailStatus.PENDING_SEND, EmailStatus.SENT, EmailStatus.FAILED, "deleted"])
def test_a_stale_draft_never_changes_or_resends_an_email_that_is_no_longer_a_draft(
    org: Organization, alice: Any, alice_mailbox: Mailbox, status: str
) -> None:
    draft = make_email(org, alice, "Draft", direction="outgoing", status="draft", mailbox=alice_mailbox)
    stale = Email.objects.get(pk=draft.pk)  # the form was opened on the draft
    if status == "deleted":
        draft.delete()
    else:  # meanwhile another tab sent it, and the outgoing run got to it
        Email.objects.filter(pk=draft.pk).update(status=status, sent_at=NOW)
    stale.subject, stale.status = "Edited", EmailStatus.DRAFT

    with pytest.raises(NotADraft, match="deleted" if status == "deleted" else "no longer a draft"):
        save_outgoing(stale, Actor(user=alice), send=True)

    current = Email.all_objects.get(pk=draft.pk)
    assert current.subject == "Draft" and current.status == (EmailStatus.DRAFT if status == "deleted" else status)
    assert not events("email.send_requested") and not SyncRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_draft_sent_from_two_tabs_at_once_is_sent_once(
    org: Organization, alice: Any, alice_mailbox: Mailbox, rq_queues: str
) -> None:
    draft = make_email(org, alice, "Draft", direction="outgoing", status="draft", mailbox=alice_mailbox)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def submit(subject: str) -> None:
        try:
            stale = Email.objects.get(pk=draft.pk)
            stale.subject = subject
            barrier.wait()
            save_outgoing(stale, Actor(user=alice), send=True)
            outcomes.append("saved")
        except NotADraft:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(subject,)) for subject in ("One", "Two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "saved"]
    draft.refresh_from_db()
    assert draft.status == EmailStatus.PENDING_SEND and draft.subject in ("One", "Two")
    assert len(events("email.send_requested")) == 1 and SyncRun.objects.count() == 1


# Track


def test_track_gives_the_conversation_what_the_email_regards(org: Organization, alice: Any, contact: Any) -> None:
    email = make_email(org, alice, "Question", message_id="<q@x>", conversation_id="t-1", regarding_contact=contact)
    other = make_email(org, alice, "Re: Question", message_id="<r@x>", in_reply_to="<q@x>")
    client = client_for(alice)

    assert client.get(f"/crm/emails/{email.pk}/track/").status_code == 405
    response = client.post(f"/crm/emails/{email.pk}/track/", follow=True)

    other.refresh_from_db()
    assert other.regarding == contact
    assert "1 more email of it now regards “Ada Lovelace”" in response.content.decode()
    [event] = events("email.conversation_tracked")
    assert (event.actor, event.object_id) == (alice, str(email.pk))


def test_track_changes_only_the_emails_the_user_may_see(
    org: Organization, alice: Any, bob: Any, queue: Mailbox, contact: Any
) -> None:
    queued = make_email(org, bob, "Question", message_id="<q@x>", conversation_id="t-1", regarding_contact=contact)
    QueueItem.objects.create(queue=queue, email=queued)  # alice sees it: queues are shared work
    private = make_email(org, bob, "Re: Question", message_id="<r@x>", in_reply_to="<q@x>", conversation_id="t-1")
    mine = make_email(org, alice, "Re: Question", message_id="<s@x>", in_reply_to="<q@x>")

    response = client_for(alice).post(f"/crm/emails/{queued.pk}/track/", follow=True)

    private.refresh_from_db()
    mine.refresh_from_db()
    assert private.regarding is None and mine.regarding == contact  # bob's private email is not alice's to change
    assert "1 more email of it now regards" in response.content.decode()


def test_track_is_refused_when_there_is_nothing_to_track(org: Organization, alice: Any) -> None:
    email = make_email(org, alice, "Tracked, regarding nothing", tracked_by=TrackedBy.RULE_ALL)
    assert client_for(alice).post(f"/crm/emails/{email.pk}/track/").status_code == 403
    assert not events("email.conversation_tracked")


# Queues


def test_queues_list_their_active_items(org: Organization, alice: Any, admin: Any, bob: Any, queue: Mailbox) -> None:
    waiting = QueueItem.objects.create(queue=queue, email=make_email(org, admin, "Printer broken"))
    QueueItem.objects.create(queue=queue, email=make_email(org, admin, "Old"), status=QueueItemStatus.DONE)
    QueueItem.objects.create(queue=queue, email=make_email(org, admin, "Bob's"), assigned_to=bob)
    client = client_for(alice)

    listing = client.get("/crm/queues/")
    [row] = listing.context["queues"]
    assert (row.queue_name, row.active, row.unassigned) == ("Support", 2, 1)

    html = client.get(f"/crm/queues/{queue.pk}/").content.decode()
    assert "Printer broken" in html and "Old" not in html
    assert f'<option value="{bob.pk}" selected>Bob (bob)</option>' in html
    assert f'id="assign-{waiting.pk}"' in html
    assert "Old" in client.get(f"/crm/queues/{queue.pk}/?status=done").content.decode()
    # Queue emails are shared work: any member may open them.
    assert client.get(f"/crm/emails/{waiting.email_id}/").status_code == 200


def test_assign_and_done_are_audited(org: Organization, alice: Any, bob: Any, admin: Any, queue: Mailbox) -> None:
    item = QueueItem.objects.create(queue=queue, email=make_email(org, admin, "Printer broken"))
    client = client_for(alice)

    assert client.get(f"/crm/queue-items/{item.pk}/assign/").status_code == 405
    response = client.post(f"/crm/queue-items/{item.pk}/assign/", {"assigned_to": bob.pk})
    assert response.url == f"/crm/queues/{queue.pk}/"
    item.refresh_from_db()
    assert item.assigned_to == bob
    [event] = events("queue_item.assigned")
    assert (event.actor, event.changes) == (alice, {"assigned_to": ["", "Bob"]})

    client.post(f"/crm/queue-items/{item.pk}/done/")
    response = client.post(f"/crm/queue-items/{item.pk}/done/", follow=True)
    item.refresh_from_db()
    assert item.status == QueueItemStatus.DONE
    assert len(events("queue_item.done")) == 1
    assert "was done already" in response.content.decode()


def test_only_members_of_the_organization_can_be_assigned(
    org: Organization, alice: Any, admin: Any, outsider: Any, approver: Any, queue: Mailbox
) -> None:
    item = QueueItem.objects.create(queue=queue, email=make_email(org, admin, "Printer broken"))
    client = client_for(alice)

    for stranger in (outsider, approver):  # another organization's member; a member without CRM records
        response = client.post(f"/crm/queue-items/{item.pk}/assign/", {"assigned_to": stranger.pk}, follow=True)
        assert "Choose a member of the queue" in response.content.decode()
    item.refresh_from_db()
    assert item.assigned_to is None and not events("queue_item.assigned")


def test_queues_of_other_organizations_are_hidden(
    org: Organization, admin: Any, outsider: Any, approver: Any, queue: Mailbox
) -> None:
    item = QueueItem.objects.create(queue=queue, email=make_email(org, admin, "Printer broken"))
    for url, method in (
        (f"/crm/queues/{queue.pk}/", "get"),
        (f"/crm/queue-items/{item.pk}/assign/", "post"),
        (f"/crm/queue-items/{item.pk}/done/", "post"),
    ):
        assert getattr(client_for(outsider), method)(url).status_code == 404
        assert getattr(client_for(approver), method)(url).status_code == 403
    assert client_for(outsider).get("/crm/queues/").context["queues"].count() == 0
    item.refresh_from_db()
    assert item.status == QueueItemStatus.ACTIVE


# A record's page


def test_a_contact_page_lists_its_newest_emails(org: Organization, alice: Any, bob: Any, contact: Any) -> None:
    for n in range(RECORD_EMAILS + 1):
        make_email(org, alice, f"About {n}", regarding_contact=contact, received_at=NOW - datetime.timedelta(hours=n))
    from_ada = make_email(org, alice, "From Ada", received_at=NOW + datetime.timedelta(hours=1))
    EmailRecipient.objects.create(email=from_ada, kind=RecipientKind.FROM, address="ada@x", contact=contact)
    make_email(org, bob, "Bob's about Ada", regarding_contact=contact)  # not alice's to see
    make_email(org, alice, "Unrelated")

    response = client_for(alice).get(f"/crm/contacts/{contact.pk}/")

    emails = response.context["emails"]
    assert [email.subject for email, _to in emails["rows"]] == ["From Ada", *(f"About {n}" for n in range(9))]
    assert emails["count"] == RECORD_EMAILS + 2
    html = response.content.decode()
    assert f"/crm/emails/?record=contact%3A{contact.pk}" in html and "All 12 emails" in html
    listed = client_for(alice).get(f"/crm/emails/?record=contact:{contact.pk}")
    assert len(subjects(listed)) == RECORD_EMAILS + 2


def test_a_task_page_has_no_emails_section(org: Organization, alice: Any) -> None:
    task = make_record("task", org, alice)
    response = client_for(alice).get(f"/crm/tasks/{task.pk}/")
    assert response.context["emails"] is None


# The forward mailbox's field


def test_delete_processed_applies_to_forward_mailboxes_only(
    org: Organization, admin: Any, alice: Any, profile: Any
) -> None:
    client = client_for(admin)
    _html, form = page(client, "/mailboxes/new/")
    assert form.conditions("delete_processed") == {"data-for-incoming-method": "forward_mailbox"}

    data = mailbox_data(org, alice, "alice@example.com", profile, delete_processed="on")
    assert client.post("/mailboxes/new/", data).status_code == 302
    assert Mailbox.objects.get().delete_processed is False  # a server-side mailbox ignores it

    Mailbox.objects.all().delete()
    data = mailbox_data(
        org,
        None,
        "forward@example.com",
        profile,
        owner_type="queue",
        queue_name="Forwarded",
        incoming_method="forward_mailbox",
        outgoing_method="none",
        act_method="none",
        delete_processed="on",
    )
    assert client.post("/mailboxes/new/", data).status_code == 302
    forward = Mailbox.objects.get()
    assert forward.delete_processed is True
    html = client.get(f"/mailboxes/{forward.pk}/").content.decode()
    assert re.search(r"Delete messages after processing</dt>\s*<dd[^>]*>yes</dd>", html)
    server_side = make_mailbox(org, alice, "alice@example.com", profile)
    assert "Delete messages after processing" not in client.get(f"/mailboxes/{server_side.pk}/").content.decode()


# Through the outgoing channel, against the Exchange simulator


@pytest.mark.django_db(transaction=True)
def test_an_email_written_on_the_page_reaches_its_recipient(
    org: Organization, alice: Any, bob: Any, rq_queues: str
) -> None:
    with running_simulator() as sim:
        for address, password in (("svc@example.com", "svc-pw"), ("alice@example.com", "a"), ("bob@example.com", "b")):
            sim.control.create_mailbox(address, password, can_impersonate=address.startswith("svc"))
        profile = make_profile(org, "Simulator", ews_url=sim.ews_url, username="svc@example.com", password="svc-pw")
        mailbox = ready_to_send(make_mailbox(org, alice, "alice@example.com", profile))
        client = client_for(alice)

        client.post("/crm/emails/new/", {"to": "Bob <bob@example.com>", "subject": "Quote", "send": "1"})
        run = run_sync(SyncRun.objects.get(mailbox=mailbox, channel="outgoing").pk)

        email = Email.objects.get()
        assert (run.status, email.status) == ("succeeded", EmailStatus.SENT)
        assert [item["subject"] for item in sim.control.items("bob@example.com", "inbox")] == [
            f"Quote CRM:{email.tracking_number}"
        ]
    html = client.get(f"/crm/emails/{email.pk}/").content.decode()
    assert 'data-live="false"' in html and ">Sent</span>" in html
    assert "Portal user: Bob" in html.split('id="recipients"', 1)[1]


# In a browser


def test_a_body_that_escaped_sanitizing_still_runs_no_script_in_the_browser(
    page: Page, live_server: Any, transactional_db: Any, org: Organization, alice: Any
) -> None:
    """Defence in depth: were a script stored in the HTML body (a sanitizer bug, say), the
    sandboxed frame and its Content Security Policy would still not run it."""
    body = (
        '<p id="hello">Hello</p><script>document.getElementById("hello").textContent = "pwned";</script>'
        '<img src="x" onerror="document.body.dataset.pwned = 1">'
    )
    email = make_email(org, alice, "Escaped", body_html=body)
    page.goto(f"{live_server.url}/login/")
    page.locator("#id_username").fill("alice")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))

    page.goto(f"{live_server.url}/crm/emails/{email.pk}/")

    frame = page.frame_locator("#email-body")
    expect(frame.locator("#hello")).to_have_text("Hello")
    expect(frame.locator("body")).not_to_have_attribute("data-pwned", "1")
    expect(page).to_have_title(re.compile(r"^Email “Escaped”"))
