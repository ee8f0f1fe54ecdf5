"""Bulk actions on mailboxes: what they apply to, and their forms.

A bulk action applies to the mailboxes ticked on a page, or, with ``all_matching``, to
every mailbox matching the page's filter (not only the page shown). The confirmation
page carries that selection in hidden fields (``Selection.hidden``) back to the action.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpRequest
from django.utils.translation import gettext_lazy, ngettext

from mailboxes.access import ADMIN, APPROVERS, org_ids, selected_mailboxes
from mailboxes.forms import MailboxFilterForm
from mailboxes.models import ApprovalStatus, EmailServerProfile, Mailbox

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
