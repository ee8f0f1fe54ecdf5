"""CRM email pages: the list, an email's page (with its body in a sandboxed frame), compose,
reply and draft editing, the "track" action, and the queues with their items."""

from __future__ import annotations

import uuid
from email.utils import formataddr
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.csp import CSP
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_POST

from audit.log import Actor
from crm.access import CRM_ROLES, visible_records
from crm.email_access import (
    get_email_for_user,
    get_queue_for_user,
    get_queue_item_for_user,
    regarding_or_recipient,
    visible_emails,
    visible_queues,
)
from crm.email_actions import NotADraft, assign, finish, save_outgoing, sender_problem
from crm.email_forms import REGARDING, AssignForm, ComposeForm, EmailFilterForm, address_text, regarding_key
from crm.models import (
    Email,
    EmailDirection,
    EmailStatus,
    QueueItem,
    QueueItemStatus,
    TrackedBy,
)
from mailboxes.access import ADMIN, org_ids, role_required
from mailboxes.models import Mailbox, OwnerType
from selfservice.access import own_mailbox
from syncjobs.mail.tracking import conversation_of, track_conversation

crm_member_required = role_required(*CRM_ROLES)

# The sanitized HTML body, alone in a sandboxed frame: no scripts, no requests anywhere (images
# inline as data: only), no forms, and only this portal's pages may frame it.
BODY_CSP = {
    "default-src": [CSP.NONE],
    "img-src": ["data:"],
    "style-src": [CSP.UNSAFE_INLINE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.NONE],
    "frame-ancestors": [CSP.SELF],
    "sandbox": True,
}
# Emails shown on a record's page, newest first; the list page has them all.
RECORD_EMAILS = 10
CONVERSATION_LIMIT = 50
LIVE_STATUSES = (EmailStatus.PENDING_SEND, EmailStatus.SENDING)


def listed(emails: Any) -> Any:
    """Emails as the tables show them: with ``when`` (received, else sent, else created: the
    tables sort by it) and what they regard."""
    return emails.annotate(when=Coalesce("received_at", "sent_at", "created_at")).select_related(
        "regarding_account", "regarding_contact", "regarding_lead", "regarding_appointment"
    )


def email_rows(emails: Any) -> list[tuple[Email, str]]:
    """(email, its recipients in words) for the email tables."""
    return [(email, ", ".join(address_text(a) for a in [*email.to, *email.cc])) for email in emails]


def _mailbox_choices(user: Any) -> Any:
    """The mailboxes the email list filters by: all of the user's admin organizations, their own, queues."""
    return Mailbox.objects.filter(
        Q(organization_id__in=org_ids(user, ADMIN))
        | Q(user_id=user.pk)
        | Q(owner_type=OwnerType.QUEUE, organization_id__in=org_ids(user, CRM_ROLES))
    ).order_by("address")


@crm_member_required
def email_list(request: HttpRequest) -> HttpResponse:
    form = EmailFilterForm(request.GET, user=request.user, mailboxes=_mailbox_choices(request.user))
    emails = listed(visible_emails(request.user))
    page = Paginator(form.apply(emails), settings.PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    record = form.cleaned_data.get("record") if form.is_valid() else None
    rows = email_rows(page.object_list)
    ctx = {"form": form, "page": page, "rows": rows, "query": query.urlencode(), "record": record}
    return render(request, "crm/email_list.html", ctx)


def _visible_ids(user: Any, records: list[Any]) -> set[Any]:
    """Of the given CRM records, the keys of those the user may open."""
    ids: set[Any] = set()
    by_model: dict[Any, list[Any]] = {}
    for obj in records:
        by_model.setdefault(type(obj), []).append(obj.pk)
    for model, pks in by_model.items():
        if model in REGARDING.values():
            ids |= set(visible_records(user, model).filter(pk__in=pks).values_list("pk", flat=True))
    return ids


def _recipient_rows(user: Any, email: Email) -> list[dict[str, Any]]:
    """The email's resolved addresses (from, to, cc), each with its record and whether it may be opened."""
    recipients = list(email.recipients.select_related("contact", "lead", "account", "user").order_by("id"))
    visible = _visible_ids(user, [r.record for r in recipients if r.record is not None])
    rows = []
    for recipient in recipients:
        found = recipient.record
        row: dict[str, Any] = {"recipient": recipient, "found": found, "url": None, "what": ""}
        if found is not None and found.pk in visible:
            row["what"] = capfirst(found._meta.verbose_name)
            row["url"] = found.get_absolute_url()
        elif found is not None and found._meta.model_name not in REGARDING:
            row["what"] = _("Portal user")
            row["name"] = found.get_full_name() or found.get_username()
        elif found is not None:
            row["what"] = capfirst(found._meta.verbose_name)
        rows.append(row)
    return rows


def _conversation(user: Any, email: Email) -> list[Email]:
    """The other emails of the email's conversation that the user may see, oldest first."""
    emails = listed(visible_emails(user)).filter(conversation_of(email), organization_id=email.organization_id)
    return list(emails.exclude(pk=email.pk).order_by("when", "created_at")[:CONVERSATION_LIMIT])


def _can_track(email: Email) -> bool:
    """Tracking a conversation gives its emails this one's "regarding", or tracks an untracked email."""
    return email.regarding is not None or not email.tracked_by


@crm_member_required
def email_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    email = get_email_for_user(request, pk)
    regarding = email.regarding
    receipts = email.receipts.select_related("mailbox", "mailbox__user").order_by("received_at", "id")
    admin_orgs = set(org_ids(request.user, ADMIN))
    ctx = {
        "email": email,
        "to": [address_text(a) for a in email.to],
        "cc": [address_text(a) for a in email.cc],
        "recipients": _recipient_rows(request.user, email),
        "regarding": regarding,
        "regarding_kind": capfirst(regarding._meta.verbose_name) if regarding is not None else "",
        "regarding_url": regarding.get_absolute_url()
        if regarding is not None and _visible_ids(request.user, [regarding])
        else None,
        "receipts": [(r, r.mailbox.organization_id in admin_orgs) for r in receipts],
        "conversation": email_rows(_conversation(request.user, email)),
        "can_edit": email.status == EmailStatus.DRAFT and email.owner_id == request.user.pk,
        "can_reply": email.status in (EmailStatus.RECEIVED, EmailStatus.SENT),
        "can_track": _can_track(email),
        "live": email.status in LIVE_STATUSES,
    }
    return render(request, "crm/email_detail.html", ctx)


@crm_member_required
def email_status(request: HttpRequest, pk: Any) -> HttpResponse:
    """The status box of an outgoing email: polled by the page while the email is on its way."""
    email = get_email_for_user(request, pk)
    return render(request, "crm/email_status.html", {"email": email, "live": email.status in LIVE_STATUSES})


@csp_override(BODY_CSP)
@xframe_options_sameorigin
@crm_member_required
def email_body(request: HttpRequest, pk: Any) -> HttpResponse:
    """The HTML body alone, for the sandboxed frame of the email's page (see BODY_CSP)."""
    email = get_email_for_user(request, pk)
    return render(request, "crm/email_body.html", {"email": email})


def _compose(
    request: HttpRequest, email: Email, initial: dict[str, Any], title: str, original: Email | None = None
) -> HttpResponse:
    """The compose page of a new email, a reply or a draft: save as draft, or send.

    1. The sender is the user's own mailbox; without one there is nothing to compose with.
    2. A draft may be saved whatever the mailbox's state; sending needs its outgoing channel to
       work (server-side, tested and enabled): otherwise the page says what to do, and the
       typed email stays in the form.
    3. Sending sets "pending send" and asks for an outgoing run now.
    4. A new email's form carries the id the email gets: the same form submitted again (a double
       click, the back button) edits what the first submit saved rather than making a second
       email, and an email that is no longer a draft is never changed (``save_outgoing``).
    """
    mailbox = own_mailbox(request)
    problem = sender_problem(mailbox)
    if mailbox is None:
        return render(request, "crm/email_form.html", {"title": title, "problem": problem, "form": None})
    send = "send" in request.POST
    if email._state.adding:
        initial = {**initial, "key": email.pk}
    form = ComposeForm(
        request.POST or None, initial=initial, user=request.user, organization=mailbox.organization, sending=send
    )
    if request.method == "POST" and form.is_valid():
        if send and problem:
            form.add_error(None, problem)
        else:
            data = form.cleaned_data
            if email._state.adding and data["key"] is not None:
                email = _submitted_before(request, email, data["key"])
            email.organization = mailbox.organization
            email.owner = request.user
            email.mailbox = mailbox
            email.direction = EmailDirection.OUTGOING
            email.tracked_by = TrackedBy.SENT_FROM_CRM
            email.sender = mailbox.address
            email.sender_name = request.user.get_full_name()
            email.to, email.cc = data["to"], data["cc"]
            email.subject, email.body_text = data["subject"], data["body_text"]
            for kind in REGARDING:
                setattr(email, f"regarding_{kind}", None)
            if data["regarding"] is not None:
                setattr(email, f"regarding_{data['regarding']._meta.model_name}", data["regarding"])
            try:
                save_outgoing(email, Actor.from_request(request), send)
            except NotADraft as refusal:
                form.add_error(None, str(refusal))
            else:
                if send:
                    messages.success(request, _("The email is on its way: it goes out with the next outgoing run."))
                else:
                    messages.success(request, _("Draft saved."))
                return redirect("email-detail", email.pk)
    if original is not None:
        cancel = original.get_absolute_url()
    elif not email._state.adding:
        cancel = email.get_absolute_url()
    else:
        cancel = reverse("email-list")
    ctx = {"title": title, "form": form, "problem": problem, "mailbox": mailbox, "original": original, "cancel": cancel}
    return render(request, "crm/email_form.html", ctx)


def _submitted_before(request: HttpRequest, email: Email, key: uuid.UUID) -> Email:
    """The new email with the id its form carries, or the email an earlier submit of that form saved."""
    saved = Email.all_objects.filter(pk=key).first()
    if saved is None:
        email.pk = key
        return email
    if saved.owner_id != request.user.pk:
        raise Http404  # another user's email: its existence is not revealed
    return saved


@crm_member_required
def email_create(request: HttpRequest) -> HttpResponse:
    initial = {"to": request.GET.get("to", ""), "regarding": request.GET.get("regarding", "")}
    return _compose(request, Email(), initial, _("New email"))


def reply_subject(subject: str) -> str:
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}".strip()


@crm_member_required
def email_reply(request: HttpRequest, pk: Any) -> HttpResponse:
    """Answer an email: to its sender (or, for one sent from here, its recipients), threaded."""
    original = get_email_for_user(request, pk)
    if original.direction == EmailDirection.INCOMING:
        to = [formataddr((original.sender_name, original.sender))] if original.sender else []
    else:
        to = [address_text(a) for a in original.to]
    regarding = original.regarding
    initial = {
        "to": ", ".join(to),
        "subject": reply_subject(original.subject),
        "regarding": regarding_key(regarding) if regarding is not None else "",
    }
    reply = Email(
        in_reply_to=original.message_id,
        references=" ".join([*original.references.split(), original.message_id]).strip(),
        conversation_id=original.conversation_id,
    )
    title = _("Reply to “%(subject)s”") % {"subject": original}
    return _compose(request, reply, initial, title, original)


@crm_member_required
def email_edit(request: HttpRequest, pk: Any) -> HttpResponse:
    """A draft, for its author: edit, save again, or send."""
    email = get_email_for_user(request, pk)
    if email.owner_id != request.user.pk:
        raise PermissionDenied
    if email.status != EmailStatus.DRAFT:
        messages.info(
            request,
            _("Only a draft can be edited; this email is “%(status)s”.") % {"status": email.get_status_display()},
        )
        return redirect("email-detail", email.pk)
    regarding = email.regarding
    initial = {
        "to": ", ".join(address_text(a) for a in email.to),
        "cc": ", ".join(address_text(a) for a in email.cc),
        "subject": email.subject,
        "body_text": email.body_text,
        "regarding": regarding_key(regarding) if regarding is not None else "",
    }
    return _compose(request, email, initial, _("Edit draft “%(subject)s”") % {"subject": email})


@require_POST
@crm_member_required
def email_track(request: HttpRequest, pk: Any) -> HttpResponse:
    """Track the email's conversation: its emails take this one's "regarding", and later messages
    of it correlate with it (syncjobs.mail.tracking.track_conversation)."""
    email = get_email_for_user(request, pk)
    if not _can_track(email):
        raise PermissionDenied
    changed = track_conversation(email, Actor.from_request(request))
    if email.regarding is not None:
        text = ngettext(
            "The conversation is tracked: %(n)d more email of it now regards “%(record)s”.",
            "The conversation is tracked: %(n)d more emails of it now regard “%(record)s”.",
            changed,
        ) % {"n": changed, "record": email.regarding}
    else:
        text = _("The conversation is tracked: its later messages become CRM emails.")
    messages.success(request, text)
    return redirect("email-detail", email.pk)


# Queues


@crm_member_required
def queue_list(request: HttpRequest) -> HttpResponse:
    queues = (
        visible_queues(request.user)
        .select_related("organization")
        .annotate(
            active=Count("queue_items", filter=Q(queue_items__status=QueueItemStatus.ACTIVE)),
            unassigned=Count(
                "queue_items",
                filter=Q(queue_items__status=QueueItemStatus.ACTIVE, queue_items__assigned_to__isnull=True),
            ),
        )
        .order_by("queue_name", "address")
    )
    return render(request, "crm/queue_list.html", {"queues": queues})


@crm_member_required
def queue_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    queue = get_queue_for_user(request, pk)
    status = request.GET.get("status")
    status = status if status in QueueItemStatus.values else QueueItemStatus.ACTIVE
    items = (
        QueueItem.objects.filter(queue=queue, status=status)
        .select_related("email", "assigned_to")
        .annotate(when=Coalesce("email__received_at", "created"))
        .order_by("-when", "-created", "id")
    )
    page = Paginator(items, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    # One list of members for every row's drop-down (a bound field would query it per row).
    members = list(AssignForm(organization=queue.organization).fields["assigned_to"].choices)
    select = forms.Select(choices=members, attrs={"class": "form-select form-select-sm"})
    rows = [
        (item, select.render("assigned_to", item.assigned_to_id, attrs={"id": f"assign-{item.pk}"}))
        for item in page.object_list
    ]
    ctx = {
        "queue": queue,
        "page": page,
        "rows": rows,
        "status": status,
        "statuses": QueueItemStatus.choices,
        "query": f"status={status}",
    }
    return render(request, "crm/queue_detail.html", ctx)


@require_POST
@crm_member_required
def queue_item_assign(request: HttpRequest, pk: Any) -> HttpResponse:
    item = get_queue_item_for_user(request, pk)
    form = AssignForm(request.POST, organization=item.queue.organization)
    if not form.is_valid():
        messages.error(request, _("Choose a member of the queue's organization."))
    else:
        user = form.cleaned_data["assigned_to"]
        assign(item, user, Actor.from_request(request))
        who = (user.get_full_name() or user.get_username()) if user else _("nobody")
        messages.success(request, _("“%(email)s” assigned to %(user)s.") % {"email": item.email, "user": who})
    return redirect("queue-detail", item.queue_id)


@require_POST
@crm_member_required
def queue_item_done(request: HttpRequest, pk: Any) -> HttpResponse:
    item = get_queue_item_for_user(request, pk)
    if finish(item, Actor.from_request(request)):
        messages.success(request, _("“%(email)s” is done.") % {"email": item.email})
    else:
        messages.info(request, _("“%(email)s” was done already.") % {"email": item.email})
    return redirect("queue-detail", item.queue_id)


# The emails section of a record's page.


def record_emails(user: Any, record: Any) -> dict[str, Any] | None:
    """The newest emails that regard a record or have it as a sender or recipient; None for
    record types an email cannot concern."""
    if record._meta.model_name not in REGARDING:
        return None
    emails = listed(visible_emails(user)).filter(regarding_or_recipient(record)).order_by("-when", "-created_at")
    return {"rows": email_rows(emails[:RECORD_EMAILS]), "count": emails.count(), "key": regarding_key(record)}
