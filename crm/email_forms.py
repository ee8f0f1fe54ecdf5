"""Forms of the CRM email pages: the list's filters, compose and reply, and a queue item's assignee."""

from __future__ import annotations

from email.utils import formataddr, getaddresses
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import validate_email
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from crm.access import CRM_ROLES, visible_records
from crm.email_access import regarding_or_recipient
from crm.models import Account, Appointment, Contact, EmailDirection, EmailReceipt, EmailRecipient, EmailStatus, Lead
from mailboxes.forms import UserChoiceField, by_full_name
from mailboxes.models import Mailbox, Membership

# What an email may regard, by the name used in "contact:<id>" and the Email field.
REGARDING: dict[str, type[Any]] = {
    "account": Account,
    "contact": Contact,
    "lead": Lead,
    "appointment": Appointment,
}


def regarding_key(record: Any) -> str:
    """ "contact:<id>" for a record an email may regard."""
    return f"{record._meta.model_name}:{record.pk}"


def find_regarding(user: Any, key: str) -> Any:
    """The record "contact:<id>" names, if the user may see it; else None."""
    kind, _sep, pk = (key or "").partition(":")
    model = REGARDING.get(kind)
    if model is None:
        return None
    try:
        return visible_records(user, model).filter(pk=pk).first()
    except forms.ValidationError:  # not a UUID
        return None


def _style(form: forms.Form, small: bool = False) -> None:
    for field in form.fields.values():
        if isinstance(field.widget, forms.HiddenInput):
            continue
        css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
        field.widget.attrs["class"] = f"{css} {css}-sm" if small else css


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class EmailFilterForm(forms.Form):
    """Search and filter the email list; invalid values are ignored, not fatal."""

    q = forms.CharField(label=_("Search"), required=False)
    direction = forms.ChoiceField(
        label=_("Direction"), choices=[("", _("Any")), *EmailDirection.choices], required=False
    )
    status = forms.ChoiceField(label=_("Status"), choices=[("", _("Any")), *EmailStatus.choices], required=False)
    mailbox = forms.ModelChoiceField(
        label=_("Mailbox"), queryset=Mailbox.objects.none(), required=False, empty_label=_("Any")
    )
    regarding = forms.ChoiceField(
        label=_("Regarding"),
        choices=[
            ("", _("Any")),
            ("account", _("An account")),
            ("contact", _("A contact")),
            ("lead", _("A lead")),
            ("appointment", _("An appointment")),
            ("none", _("Nothing")),
        ],
        required=False,
    )
    since = forms.DateField(label=_("From date"), required=False, widget=DateInput())
    until = forms.DateField(label=_("To date"), required=False, widget=DateInput())
    # A record's "all emails" link: the emails regarding it or with it as a recipient.
    record = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: Any, mailboxes: QuerySet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["mailbox"].queryset = mailboxes
        _style(self, small=True)

    def clean_record(self) -> Any:
        return find_regarding(self.user, self.cleaned_data["record"])

    def apply(self, emails: QuerySet) -> QuerySet:
        """Filter the emails (annotated with ``when``), newest first."""
        data = self.cleaned_data if self.is_valid() else {}
        # Every word must match the subject, the sender, a recipient or the text.
        for word in (data.get("q") or "").split():
            recipients = EmailRecipient.objects.filter(email=OuterRef("pk")).filter(
                Q(address__icontains=word) | Q(name__icontains=word)
            )
            emails = emails.filter(
                Q(subject__icontains=word)
                | Q(sender__icontains=word)
                | Q(sender_name__icontains=word)
                | Q(body_text__icontains=word)
                | Exists(recipients)
            )
        for name in ("direction", "status"):
            if data.get(name):
                emails = emails.filter(**{name: data[name]})
        if mailbox := data.get("mailbox"):
            receipts = EmailReceipt.objects.filter(email=OuterRef("pk"), mailbox=mailbox)
            emails = emails.filter(Q(mailbox=mailbox) | Exists(receipts))
        if regarding := data.get("regarding"):
            if regarding == "none":
                emails = emails.filter(**{f"regarding_{kind}__isnull": True for kind in REGARDING})
            else:
                emails = emails.filter(**{f"regarding_{regarding}__isnull": False})
        if since := data.get("since"):
            emails = emails.filter(when__date__gte=since)
        if until := data.get("until"):
            emails = emails.filter(when__date__lte=until)
        if record := data.get("record"):
            emails = emails.filter(regarding_or_recipient(record))
        return emails.order_by("-when", "-created_at", "id")


def address_text(value: Any) -> str:
    """An entry of Email.to/cc ({"address", "name"}, or an address) as people read and type it."""
    if isinstance(value, dict):
        return formataddr((value.get("name") or "", value.get("address") or ""))
    return str(value)


class AddressListField(forms.CharField):
    """Addresses separated by commas or semicolons, "Name <address>" or the bare address; cleaned
    to Email.to's form, [{"address": lower case, "name": ...}], in the order typed, once each."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(address_text(a) for a in value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[dict[str, str]]:
        if isinstance(value, list):
            return value
        found: dict[str, dict[str, str]] = {}
        invalid = []
        for part in (p.strip() for p in (value or "").replace(";", ",").split(",")):
            if not part:
                continue
            parsed = getaddresses([part])
            name, address = parsed[0] if len(parsed) == 1 else ("", "")
            try:
                validate_email(address)
            except forms.ValidationError:
                invalid.append(part)
                continue
            found.setdefault(address.lower(), {"address": address.lower(), "name": name.strip()})
        if invalid:
            raise forms.ValidationError(
                _("Not an email address: %(addresses)s"), params={"addresses": ", ".join(invalid)}, code="invalid"
            )
        return list(found.values())


class ComposeForm(forms.Form):
    """A new email, a reply or a draft: recipients, subject, text, and what it regards.

    ``key``: the id a new email gets, fixed when the form is shown (see ``email_views._compose``).
    """

    key = forms.UUIDField(widget=forms.HiddenInput, required=False)
    to = AddressListField(
        label=_("To"),
        required=False,
        # Help texts are HTML (not escaped when the form is rendered): hence &lt; and &gt;.
        help_text=_(
            "Email addresses, separated by commas; a name may come first: Ada Lovelace &lt;ada@example.com&gt;"
        ),
    )
    cc = AddressListField(label=_("Cc"), required=False)
    subject = forms.CharField(label=_("Subject"), max_length=900, required=False)
    body_text = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 12}), required=False)
    regarding = forms.ChoiceField(
        label=_("Regarding"),
        required=False,
        help_text=_("To write about a contact, lead, account or appointment, start from its page (“New email”)."),
    )

    def __init__(self, *args: Any, user: Any, organization: Any, sending: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.organization = organization
        self.sending = sending  # a draft may lack recipients; an email to send may not
        # The choices: none, or the record given (prefilled, or submitted) if the user may see it.
        key = self.data.get("regarding") if self.is_bound else self.initial.get("regarding")
        choices = [("", _("Nothing"))]
        if record := find_regarding(user, key or ""):
            choices.append((regarding_key(record), f"{capfirst(record._meta.verbose_name)}: {record}"))
        self.fields["regarding"].choices = choices
        _style(self)

    def clean_subject(self) -> str:
        return self.cleaned_data["subject"].strip()

    def clean_to(self) -> list[dict[str, str]]:
        if self.sending and not self.cleaned_data["to"]:
            raise forms.ValidationError(_("Enter at least one recipient to send the email."), code="required")
        return self.cleaned_data["to"]

    def clean_regarding(self) -> Any:
        record = find_regarding(self.user, self.cleaned_data["regarding"])
        if record is not None and self.organization is not None and record.organization_id != self.organization.pk:
            raise forms.ValidationError(_("Choose a record of the organization the email is sent from."))
        return record


class AssignForm(forms.Form):
    """Who works on a queue item: an administrator or user of the queue's organization."""

    assigned_to = UserChoiceField(
        label=_("Assign to"), queryset=get_user_model().objects.none(), required=False, empty_label=_("Nobody")
    )

    def __init__(self, *args: Any, organization: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        members = Membership.objects.filter(organization=organization, role__in=CRM_ROLES).values("user_id")
        self.fields["assigned_to"].queryset = by_full_name(get_user_model().objects.filter(pk__in=members))
        _style(self, small=True)
