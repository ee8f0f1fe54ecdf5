"""Bulk actions on mailboxes: what they apply to, and the changes the model cannot make yet.

A bulk action applies to the mailboxes ticked on a page, or, with ``all_matching``, to
every mailbox matching the page's filter (not only the page shown). The confirmation
page carries that selection in hidden fields (``Selection.hidden``) back to the action.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from audit.log import Actor, record
from mailboxes.access import ADMIN, APPROVERS, org_ids, selected_mailboxes
from mailboxes.forms import MailboxFilterForm
from mailboxes.models import ApprovalStatus, CredentialsSource, EmailServerProfile, Mailbox

# The approvals page's tabs; the empty status is no tab.
APPROVAL_TABS = (ApprovalStatus.PENDING, ApprovalStatus.REJECTED, ApprovalStatus.APPROVED)
# How many names a message lists before it says "and N more".
NAMES_SHOWN = 5
REASON_MAX_LENGTH = 1000


@dataclass
class Selection:
    """The mailboxes a bulk action applies to, and the fields that select them again."""

    mailboxes: list[Mailbox]
    all_matching: bool = False
    hidden: list[tuple[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.mailboxes)

    @property
    def query(self) -> str:
        return urlencode(self.hidden)


def approval_tab(value: Any) -> str:
    return value if value in APPROVAL_TABS else ApprovalStatus.PENDING


def approval_selection(request: HttpRequest, data: Any) -> Selection:
    """Ticked mailboxes, or with all_matching every mailbox of the approver's organizations in the tab's status."""
    if data.get("all_matching"):
        status = data.get("status")
        if status not in APPROVAL_TABS:
            raise Http404
        mailboxes = (
            Mailbox.objects.for_list()
            .filter(organization_id__in=org_ids(request.user, APPROVERS), approval_status=status)
            .order_by("address", "id")
        )
        return Selection(list(mailboxes), True, [("all_matching", "1"), ("status", status)])
    mailboxes = selected_mailboxes(request, APPROVERS, data)
    return Selection(mailboxes, False, [("mailbox", str(m.pk)) for m in mailboxes])


FILTER_FIELDS = tuple(name for name in MailboxFilterForm.base_fields if name != "sort")


def mailbox_selection(request: HttpRequest, data: Any) -> Selection:
    """Ticked mailboxes, or with all_matching every mailbox of the admin's matching the list's filter.

    A filter that is not valid (any more) is a 404: the list would ignore it and show every
    mailbox, and an action must not apply to all of them by accident.
    """
    if data.get("all_matching"):
        orgs = org_ids(request.user, ADMIN)
        form = MailboxFilterForm(data, org_ids=orgs)
        if not form.is_valid():
            raise Http404
        mailboxes = form.apply(Mailbox.objects.for_list().filter(organization_id__in=orgs))
        hidden = [("all_matching", "1")] + [(name, str(data[name])) for name in FILTER_FIELDS if data.get(name)]
        return Selection(list(mailboxes), True, hidden)
    mailboxes = selected_mailboxes(request, ADMIN, data)
    return Selection(mailboxes, False, [("mailbox", str(m.pk)) for m in mailboxes])


def name_list(items: Iterable[Any], shown: int = NAMES_SHOWN) -> str:
    """ "a, b, c" or "a, b, c, d, e and 7 more": names for a message that stays readable."""
    names = [str(item) for item in items]
    if len(names) <= shown:
        return ", ".join(names)
    rest = len(names) - shown
    return ngettext("%(names)s and %(n)d more", "%(names)s and %(n)d more", rest) % {
        "names": ", ".join(names[:shown]),
        "n": rest,
    }


# Reject with a reason


class RejectForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason (optional)"),
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control"}),
        help_text=gettext_lazy("Recorded in the audit log with the rejection."),
    )

    def clean_reason(self) -> str:
        return self.cleaned_data["reason"].strip()


def reject(mailbox: Mailbox, actor: Actor, reason: str = "") -> None:
    """Reject the mailbox's address, the reason in the rejection's audit event.

    Without a reason this is ``Mailbox.reject``. With one, it does the same steps as
    ``Mailbox._set_approval`` until the model takes a reason itself:
    1. refuse a mailbox without address (a remap released it since the page was loaded);
    2. set the status, who and when;
    3. save those fields and record one ``mailbox.rejected`` event with the changes and the reason.
    """
    if not reason:
        mailbox.reject(actor)
        return
    if not mailbox.address:
        raise ValidationError(_("This mailbox has no email address to approve or reject."))
    fields = ["approval_status", "approval_changed_by", "approval_changed_at", "updated"]
    mailbox.approval_status = ApprovalStatus.REJECTED
    mailbox.approval_changed_by = actor.user if actor.user and actor.user.is_authenticated else None
    mailbox.approval_changed_at = timezone.now()
    changes = {name: change for name, change in mailbox.audit_changes().items() if name in fields}
    changes["reason"] = ["", reason]
    with transaction.atomic():
        mailbox.save(update_fields=fields)
        record(actor, "mailbox.rejected", mailbox, changes=changes, organization=mailbox.audit_organization())


# Change the server profile


class ChangeProfileForm(forms.Form):
    new_profile = forms.ModelChoiceField(
        label=gettext_lazy("New server profile"),
        queryset=EmailServerProfile.objects.none(),
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args: Any, organization_id: Any, exclude: Iterable[Any] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        profiles = EmailServerProfile.objects.filter(organization_id=organization_id)
        self.fields["new_profile"].queryset = profiles.exclude(pk__in=list(exclude))


class ChangeRefused(Exception):
    """Some mailboxes cannot use the new profile; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


def profile_problems(mailbox: Mailbox, profile: EmailServerProfile) -> list[str]:
    """Why a mailbox cannot move to a profile: the model's rules, and its own credentials if the profile needs them."""
    probe = copy.copy(mailbox)  # clean() normalises fields: check a copy, save the mailbox unchanged
    probe.profile = profile
    try:
        probe.clean()
    except ValidationError as error:
        problems = list(error.messages)
    else:
        problems = []
    if profile.credentials_source == CredentialsSource.MAILBOX and not (mailbox.username and mailbox.password_stored):
        problems.append(_("The profile uses each mailbox's own credentials, and this mailbox has none."))
    return problems


def change_profile(mailboxes: list[Mailbox], profile: EmailServerProfile, actor: Actor) -> list[Mailbox]:
    """Move the mailboxes to the profile: all of them, or none; returns those that moved.

    1. Check every mailbox against the new profile; any problem refuses the whole change.
    2. Save each mailbox as an admin's edit does (``save_from_form``): the changed profile
       sets its tests back to Not run and disables its channels, one audit event per mailbox.
    Mailboxes on that profile already are left alone.
    """
    moving = [m for m in mailboxes if m.profile_id != profile.pk]
    problems = [
        _("%(mailbox)s: %(problem)s") % {"mailbox": m, "problem": " ".join(found)}
        for m in moving
        if (found := profile_problems(m, profile))
    ]
    if problems:
        raise ChangeRefused(problems)
    with transaction.atomic():
        for mailbox in moving:
            mailbox.profile = profile
            mailbox.save_from_form(actor)
    return moving
