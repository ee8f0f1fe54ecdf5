"""Every page each role can reach fits a phone and a desktop, and passes axe-core.

Per role and width (390 px, 1280 px) one browser context signs in through the login page and
visits every page that role can reach, each with content (tables, history, sync runs). A page
fails if

1. it scrolls sideways, or an element outside a ``.table-responsive`` box reaches past the
   viewport's right edge (the outermost such elements are named);
2. axe-core reports a violation of impact "serious" or "critical";
3. it has no visible <h1>, or (CRM pages) not the heading it should have.

axe-core (static/vendor/axe/) is added to the pages by the test only, as a same-origin script:
the Content Security Policy stays on, so the pages are checked as browsers show them. axe
looks at the same markup at both widths but for what the width hides or makes scroll, so it
runs on every page at 390 px (wide tables scroll there; the menu is checked opened) and at
1280 px on the first page after signing in (the menu laid out in a row).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.templatetags.static import static
from django.utils import timezone
from django.utils.text import capfirst
from playwright.sync_api import Browser, Page, expect

from audit.log import Actor
from audit.models import AuditEvent
from crm.models import (
    Account,
    Appointment,
    Contact,
    Email,
    EmailReceipt,
    EmailRecipient,
    IgnoredMessage,
    Lead,
    Priority,
    QueueItem,
    Task,
    TrackedFolder,
)
from crm.views import KINDS
from mailboxes.models import Mailbox, OwnerType, TestStatus
from monitoring.models import Alert, AlertKind
from syncjobs.models import Conflict, ErrorKind, ItemLink, LinkState, RunStatus, SyncRun, TestRun, TestRunStatus
from tests.conftest import PASSWORD, make_mailbox, make_profile

AXE = static("vendor/axe/axe.min.js")
WIDTHS = (390, 1280)
PHONE = 390
ROLES = ("administrator", "approver", "auditor", "user")


# In the page: the outermost elements (in scope) outside a .table-responsive box that reach past
# the viewport's right edge, whether the page scrolls sideways, its <h1> and title, and (withAxe)
# axe-core's serious and critical violations in scope.
CHECK_JS = """async ([scope, withAxe]) => {
  const root = document.documentElement;
  const limit = root.clientWidth;
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += '#' + el.id;
    for (const c of Array.from(el.classList).slice(0, 3)) name += '.' + c;
    const text = (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 40);
    const right = Math.round(el.getBoundingClientRect().right);
    return `${name}${text ? ' "' + text + '"' : ''} (right edge ${right} px)`;
  };
  // Inside a .table-responsive box an element may reach past the edge, as the box scrolls it,
  // unless it is positioned against something outside the box, which the box then does not clip.
  const escapes = (el, box) => {
    const position = getComputedStyle(el).position;
    if (position === 'fixed') return true;
    return position === 'absolute' && !(el.offsetParent && box.contains(el.offsetParent));
  };
  const wide = [];
  for (const el of document.querySelector(scope).querySelectorAll('*')) {
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0 || rect.right <= limit + 0.5) continue;
    const box = el.parentElement && el.parentElement.closest('.table-responsive');
    if (box && !escapes(el, box)) continue;
    if (wide.some((outer) => outer.contains(el))) continue;
    wide.push(el);
  }
  const h1 = document.querySelector('h1');
  const results = withAxe ? await axe.run(scope, {resultTypes: ['violations']}) : {violations: []};
  return {
    scrolls: root.scrollWidth > Math.min(window.innerWidth, limit),
    scrollWidth: root.scrollWidth,
    width: limit,
    wide: wide.map(describe),
    heading: h1 && h1.getBoundingClientRect().height > 0 ? h1.textContent.trim().replace(/\\s+/g, ' ') : null,
    title: document.title,
    violations: results.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
      })),
  };
}"""


@dataclass(frozen=True)
class Visit:
    label: str
    path: str
    status: int = 200
    heading: str = ""  # the <h1> (and the start of the <title>) the page must have


@dataclass(frozen=True)
class Problem:
    label: str
    rule: str  # "overflow", "heading" or an axe rule id
    detail: str

    def __str__(self) -> str:
        return f"{self.label} [{self.rule}] {self.detail}"


def seed(org: Any, admin: Any, alice: Any) -> dict[str, Any]:
    """Content for every page: a profile, a user's and a queue's mailbox, sync runs, CRM records."""
    actor = Actor(user=admin, name=admin.username)
    # Staff but not superuser: the menu gets its Django admin entry, and the queue dashboard is a 403.
    admin.is_staff = True
    admin.save(update_fields=["is_staff"])

    profile = make_profile(org, "Acme Exchange")
    profile.polling_interval_minutes = 10
    profile.save_audited(actor)
    mailbox = make_mailbox(org, alice, "alice@example.com", profile)
    mailbox.approve(actor)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        test_incoming=TestStatus.SUCCESS,
        test_outgoing=TestStatus.FAILURE,
        test_act=TestStatus.SUCCESS,
        test_overall=TestStatus.FAILURE,
        tested_at=timezone.now(),
        enabled_act=True,
        last_error="SMTP: 535 5.7.3 Authentication unsuccessful",
        next_sync_at=timezone.now() + timedelta(minutes=5),
    )
    queue = make_mailbox(org, None, "support@example.com", profile, owner_type=OwnerType.QUEUE, queue_name="Support")

    account = Account.objects.create(
        organization=org, owner=alice, name="Northwind Traders", email="info@northwind.example", phone="+45 70 12 34 56"
    )
    contact = Contact.objects.create(
        organization=org,
        owner=alice,
        first_name="Ada",
        last_name="Lovelace",
        email="ada.lovelace@northwind.example",
        job_title="Head of analytical engines",
        business_phone="+45 70 12 34 57",
        account=account,
        description="Met at the trade fair.\nPrefers email.",
    )
    lead = Lead.objects.create(
        organization=org, owner=alice, first_name="Grace", last_name="Hopper", company_name="Compiler Works"
    )
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    appointment = Appointment.objects.create(
        organization=org,
        owner=alice,
        subject="Quarterly review with Northwind",
        start=start,
        end=start + timedelta(hours=1),
        location="Meeting room 2",
        attendees=["ada.lovelace@northwind.example", "alice@example.com", "someone@elsewhere.example"],
        regarding_contact=contact,
    )
    task = Task.objects.create(
        organization=org, owner=alice, subject="Send the proposal", due=start.date(), priority=Priority.HIGH
    )

    # The mailbox page's tables: runs, a test, a quarantined item, an open conflict; the contact's sync state.
    now = timezone.now()
    SyncRun.objects.create(
        mailbox=mailbox,
        status=RunStatus.SUCCEEDED,
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=10) + timedelta(seconds=12),
        counts={"to_exchange": {"created": 7, "updated": 2, "deleted": 1}, "to_crm": {"created": 3, "updated": 4}},
    )
    SyncRun.objects.create(
        mailbox=mailbox,
        channel="incoming",
        status=RunStatus.FAILED,
        error_kind=ErrorKind.GUARD,
        error="The run would delete 40 of 50 linked items.",
        started_at=now - timedelta(minutes=2),
        finished_at=now - timedelta(minutes=1),
    )
    TestRun.objects.create(
        mailbox=mailbox,
        status=TestRunStatus.DONE,
        finished_at=now,
        results={
            "incoming": {"status": "success", "message": "Passed."},
            "outgoing": {"status": "failure", "message": "535 5.7.3 Authentication unsuccessful"},
            "act": {"status": "success", "message": "Passed."},
        },
    )
    link = ItemLink.objects.create(
        mailbox=mailbox,
        record_type="contact",
        crm_id=contact.pk,
        exchange_id="item-contact",
        last_synced_at=now,
    )
    ItemLink.objects.create(
        mailbox=mailbox,
        record_type="task",
        crm_id=task.pk,
        exchange_id="item-task",
        state=LinkState.QUARANTINED,
        error_count=3,
        last_error="ErrorInvalidValueForProperty: bad due date",
    )
    Conflict.objects.create(
        mailbox=mailbox,
        link=link,
        record_type="contact",
        crm_id=contact.pk,
        fields=["job_title", "mobile_phone"],
        base={"job_title": "Engineer", "mobile_phone": "+45 20 00 01 00"},
        crm_values={"job_title": "Analyst", "mobile_phone": "+45 20 00 01 01"},
        exchange_values={"job_title": "Countess", "mobile_phone": "+45 20 00 01 99"},
        resolution={"job_title": "exchange", "mobile_phone": "crm"},
    )
    # An open alert (monitoring page, mailbox page) about the mailbox, failing since.
    Mailbox.objects.filter(pk=mailbox.pk).update(consecutive_failures=1)
    Alert.objects.create(
        organization=org,
        kind=AlertKind.MASS_DELETE_REFUSED,
        mailbox=mailbox,
        detail="This run would delete 40 of the 50 items the portal keeps in the mailbox (more than 30%).",
    )
    records = {"account": account, "contact": contact, "lead": lead, "appointment": appointment, "task": task}
    email = seed_emails(org, admin, alice, mailbox, queue, contact)
    # The mailbox pages' tracked folder and ignored message (My tracked folders, My mailbox).
    folder = TrackedFolder.objects.create(
        mailbox=mailbox, folder_name="Northwind analytical engines", regarding_account=account
    )
    IgnoredMessage.objects.create(
        mailbox=mailbox,
        source_id="item-ignored",
        message_id="<malformed-0123456789abcdef0123456789abcdef@mail.northwind.example>",
        subject="Punched cards, version 2 (scanned)",
        reason="The message is larger than the portal accepts (12.0 MB; at most 10.0 MB).",
    )
    return {
        "profile": profile,
        "mailbox": mailbox,
        "queue": queue,
        "records": records,
        "email": email,
        "folder": folder,
    }


def seed_emails(org: Any, admin: Any, alice: Any, mailbox: Mailbox, queue: Mailbox, contact: Any) -> Email:
    """An email from the contact with an HTML body, its recipients and receipt, a reply in its
    conversation that failed to go out, and a queue item."""
    email = Email.objects.create(
        organization=org,
        owner=alice,
        subject="Questions about the analytical engine and its punched cards",
        direction="incoming",
        status="received",
        sender="ada.lovelace@northwind.example",
        sender_name="Ada Lovelace",
        to=[{"address": "alice@example.com", "name": "Alice"}, {"address": "someone@elsewhere.example", "name": ""}],
        message_id="<very-long-message-id-0123456789abcdef0123456789abcdef@mail.northwind.example>",
        conversation_id="thread-1",
        body_html="<p>Dear Alice,</p><table><tr><td>Cards</td><td>1,200</td></tr></table>",
        received_at=timezone.now(),
        tracked_by="rule_crm_records",
        regarding_contact=contact,
        mailbox=mailbox,
    )
    EmailRecipient.objects.create(email=email, kind="from", address=email.sender, contact=contact)
    EmailRecipient.objects.create(email=email, kind="to", address="alice@example.com", user=alice)
    EmailReceipt.objects.create(email=email, mailbox=mailbox, folder="inbox")
    Email.objects.create(
        organization=org,
        owner=alice,
        subject=f"Re: {email.subject}",
        direction="outgoing",
        status="failed",
        status_reason="550 5.1.1 The recipient does not exist",
        to=[{"address": email.sender, "name": "Ada Lovelace"}],
        in_reply_to=email.message_id,
        conversation_id="thread-1",
        mailbox=mailbox,
    )
    waiting = Email.objects.create(
        organization=org, owner=admin, subject="The printer on floor 2 is broken", direction="incoming"
    )
    QueueItem.objects.create(queue=queue, email=waiting, assigned_to=alice)
    return email


def email_visits(data: dict[str, Any]) -> list[Visit]:
    email, queue = data["email"], data["queue"]
    return [
        Visit("email-list", "/crm/emails/", heading="Emails"),
        Visit("email-detail", f"/crm/emails/{email.pk}/", heading=f"Email “{email}”"),
        Visit("email-create", "/crm/emails/new/", heading="New email"),
        Visit("email-reply", f"/crm/emails/{email.pk}/reply/", heading=f"Reply to “{email}”"),
        Visit("queue-list", "/crm/queues/", heading="Email queues"),
        Visit("queue-detail", f"/crm/queues/{queue.pk}/", heading="Queue “Support”"),
    ]


def crm_visits(records: dict[str, Any]) -> list[Visit]:
    """Each record type's list, record page and edit form; a new and a delete form (one template for all)."""
    visits = []
    for name, kind in KINDS.items():
        slug, record = kind.slug, records[name]
        visits += [
            Visit(f"{name}-list", f"/crm/{slug}/", heading=capfirst(kind.verbose_name_plural)),
            Visit(f"{name}-detail", f"/crm/{slug}/{record.pk}/", heading=f"{capfirst(kind.verbose_name)} “{record}”"),
            Visit(f"{name}-edit", f"/crm/{slug}/{record.pk}/edit/", heading=f"Edit {kind.verbose_name} “{record}”"),
        ]
    contact = records["contact"]
    visits += [
        Visit("contact-create", "/crm/contacts/new/", heading="New contact"),
        Visit("contact-delete", f"/crm/contacts/{contact.pk}/delete/", heading=f"Delete contact “{contact}”"),
    ]
    return visits


def visits_for(role: str, data: dict[str, Any]) -> list[Visit]:
    mailbox, queue, profile = data["mailbox"].pk, data["queue"].pk, data["profile"].pk
    not_found = Visit("404", "/no-such-page/", 404)
    approved = AuditEvent.objects.get(action="mailbox.approved", object_id=str(mailbox)).pk
    if role == "administrator":
        return [
            Visit("dashboard", "/dashboard/"),
            Visit("mailbox-list", "/mailboxes/"),
            Visit("mailbox-detail", f"/mailboxes/{mailbox}/"),
            Visit("mailbox-detail (queue)", f"/mailboxes/{queue}/"),
            Visit("mailbox-edit", f"/mailboxes/{mailbox}/edit/"),
            Visit("mailbox-delete", f"/mailboxes/{queue}/delete/"),
            Visit("profile-list", "/profiles/"),
            Visit("profile-detail", f"/profiles/{profile}/"),
            Visit("profile-delete", f"/profiles/{profile}/delete/"),
            Visit("approvals", "/approvals/"),
            Visit("monitoring", "/monitoring/", heading="Sync monitoring"),
            Visit("monitoring-mailboxes", "/monitoring/mailboxes/?state=failing", heading="Mailboxes: Failing"),
            Visit("audit-log", "/audit/"),
            Visit("audit-event", f"/audit/{approved}/"),
            *crm_visits(data["records"]),
            *email_visits(data),
            # Staff but not superuser: the queue dashboard is refused.
            Visit("403", "/django-rq/", 403),
            not_found,
        ]
    if role == "approver":
        return [
            Visit("approvals", "/approvals/"),
            Visit("approvals (approved)", "/approvals/?status=approved"),
            Visit("403", "/dashboard/", 403),
            not_found,
        ]
    if role == "auditor":
        return [
            Visit("audit-log", "/audit/"),
            Visit("audit-log (filtered)", "/audit/?action=mailbox"),
            Visit("audit-log (bad filter)", "/audit/?date_from=2024-02-30&action=drop+table"),
            Visit("audit-event", f"/audit/{approved}/"),
            Visit("audit-object", f"/audit/object/mailboxes.mailbox/{mailbox}/"),
            Visit("403", "/dashboard/", 403),
            not_found,
        ]
    return [
        Visit("home", "/"),
        Visit("my-mailbox", "/me/mailbox/", heading="My mailbox"),
        Visit("my-folders", "/me/folders/", heading="My tracked folders"),
        Visit(
            "my-folder-remove",
            f"/me/folders/{data['folder'].pk}/remove/",
            heading="Stop tracking the folder “Northwind analytical engines”",
        ),
        *crm_visits(data["records"]),
        *email_visits(data),
        Visit("403", "/dashboard/", 403),
        not_found,
    ]


def check(page: Page, visit: Visit, with_axe: bool, scope: str = "body") -> list[Problem]:
    """The problems of the page as it is now, or of the part of it that scope selects."""
    if with_axe:
        page.add_script_tag(url=AXE)
    found = page.evaluate(CHECK_JS, [scope, with_axe])
    whole_page = scope == "body"
    problems = []
    if whole_page and found["heading"] is None:
        problems.append(Problem(visit.label, "heading", "no visible <h1>"))
    elif whole_page and visit.heading:
        if found["heading"] != visit.heading or not found["title"].startswith(f"{visit.heading} · "):
            detail = f"<h1> {found['heading']!r}, <title> {found['title']!r}; expected {visit.heading!r}"
            problems.append(Problem(visit.label, "heading", detail))
    if found["wide"] or (whole_page and found["scrolls"]):
        what = "; ".join(found["wide"]) or "the page itself"
        detail = f"scrolls sideways ({found['scrollWidth']} > {found['width']} px): {what}"
        problems.append(Problem(visit.label, "overflow", detail))
    for violation in found["violations"]:
        detail = f"{violation['impact']}: {violation['help']} — {', '.join(violation['nodes'])}"
        problems.append(Problem(visit.label, violation["id"], detail))
    return problems


@pytest.mark.parametrize("width", WIDTHS, ids=lambda w: f"{w}px")
@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_the_screen_and_passes_axe(
    browser: Browser,
    live_server: Any,
    transactional_db: Any,
    org: Any,
    admin: Any,
    approver: Any,
    auditor: Any,
    alice: Any,
    role: str,
    width: int,
    tmp_path: Path,
) -> None:
    data = seed(org, admin, alice)
    user = {"administrator": admin, "approver": approver, "auditor": auditor, "user": alice}[role]
    visits = visits_for(role, data)
    context = browser.new_context(viewport={"width": width, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    url = live_server.url
    phone = width == PHONE
    problems: list[Problem] = []
    try:
        # 1. The sign-in page, signed out; then sign in through it.
        page.goto(f"{url}/login/")
        problems += check(page, Visit("login", "/login/"), with_axe=True)
        page.locator("#id_username").fill(user.username)
        page.locator("#id_password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).not_to_have_url(re.compile(r"/login/"))

        # 2. The menu: opened on the phone, in a row on the desktop.
        if phone:
            page.get_by_role("button", name="Menu").click()
            page.locator("#nav.show:not(.collapsing)").wait_for()
        problems += check(page, Visit("menu", ""), with_axe=True, scope="nav.navbar")

        # 3. Every page the role can reach.
        for visit in visits:
            response = page.goto(url + visit.path)
            assert response is not None and response.status == visit.status, (visit, response and response.status)
            problems += check(page, visit, with_axe=phone)

        # 4. A form whose CSRF cookie is gone: the "form had expired" page.
        context.clear_cookies(name="csrftoken")
        page.get_by_role("button", name="Change language").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("The form had expired")
        problems += check(page, Visit("403 (expired form)", ""), with_axe=phone)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"screenshot of the failing page: {tmp_path / 'failure.png'}")
        raise
    finally:
        context.close()

    assert not problems, f"{role} at {width} px:\n" + "\n".join(map(str, problems))
