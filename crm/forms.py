"""CRM record forms: validate and normalise; the models hold the rules."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import validate_email
from django.db import models
from django.db.models import Q, QuerySet
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from crm.access import CRM_ROLES, visible_records
from crm.models import Account, Appointment, Contact, CrmRecord, Lead, Task
from mailboxes.access import ADMIN, org_ids
from mailboxes.forms import DateTimeInput
from mailboxes.models import Membership, Organization

STALE_VERSION = _(
    "This record was changed by someone else (or by a mailbox sync) after you opened it. "
    "Reload the page to see the changes, then edit again."
)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


def _strip(value: str | None) -> str:
    return (value or "").strip()


def _email(value: str | None) -> str:
    return _strip(value).lower()


class EmailListField(forms.CharField):
    """Addresses typed one per line or comma separated, as a sorted list without duplicates, in lower case.

    Comparing lists (not the typed text) keeps a form that only reorders them unchanged.
    """

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        return sorted({a.lower() for a in re.split(r"[,;\s]+", value or "") if a})


class RecordForm(forms.ModelForm):
    """The fields every record has: its organization and owner, and the version the editor saw.

    1. The organization is one where the user may create records; an existing record stays where it is.
    2. Administrators pick the owner among the members of their organizations; a plain user owns
       what they create (the view sets it), so the owner field is dropped for them.
    3. ``version`` is the version the page was rendered from: a record saved in between is refused,
       so a sync's change is not overwritten unseen.
    """

    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # Foreign keys to other records, limited to what the user may see.
    record_fields: dict[str, type[CrmRecord]] = {}

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.admin_org_ids = org_ids(user, ADMIN)
        orgs = self.fields["organization"]
        orgs.queryset = Organization.objects.filter(
            pk__in=Membership.objects.filter(user=user, role__in=CRM_ROLES).values("organization_id")
        )
        adding = self.instance._state.adding
        if not adding:
            orgs.disabled = True
            self.fields["version"].initial = self.instance.version
        elif not self.is_bound and len(choices := list(orgs.queryset)) == 1:
            self.initial["organization"] = choices[0].pk
        if self.admin_org_ids:
            members = Membership.objects.filter(organization_id__in=self.admin_org_ids).values("user_id")
            owner = self.fields["owner"]
            owner.queryset = get_user_model().objects.filter(Q(pk__in=members) | Q(pk=user.pk)).order_by("username")
            if adding and not self.is_bound:
                self.initial.setdefault("owner", user.pk)
        else:
            del self.fields["owner"]
        for name, model in self.record_fields.items():
            self.fields[name].queryset = visible_records(user, model)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.instance._state.adding and cleaned.get("version") != self.instance.version:
            raise forms.ValidationError(STALE_VERSION, code="stale")
        organization = cleaned.get("organization")
        owner = cleaned.get("owner")
        if organization and owner and organization.pk not in self.admin_org_ids and owner != self.user:
            # An administrator elsewhere is a plain user here: they own what they create here.
            self.add_error("owner", _("In this organization you may only create records you own."))
        for name in self.record_fields:
            related = cleaned.get(name)
            if related is not None and organization and related.organization_id != organization.pk:
                self.add_error(name, _("Choose a record of the same organization."))
        return cleaned


class AccountForm(RecordForm):
    class Meta:
        model = Account
        fields = ["organization", "owner", "name", "email", "phone"]

    def clean_name(self) -> str:
        return _strip(self.cleaned_data["name"])

    def clean_email(self) -> str:
        return _email(self.cleaned_data["email"])

    def clean_phone(self) -> str:
        return _strip(self.cleaned_data["phone"])


class ContactForm(RecordForm):
    record_fields = {"account": Account}

    class Meta:
        model = Contact
        fields = [
            "organization",
            "owner",
            "first_name",
            "last_name",
            "email",
            "job_title",
            "business_phone",
            "mobile_phone",
            "account",
            "description",
            "is_active",
        ]

    def clean_first_name(self) -> str:
        return _strip(self.cleaned_data["first_name"])

    def clean_last_name(self) -> str:
        return _strip(self.cleaned_data["last_name"])

    def clean_email(self) -> str:
        return _email(self.cleaned_data["email"])

    def clean_business_phone(self) -> str:
        return _strip(self.cleaned_data["business_phone"])

    def clean_mobile_phone(self) -> str:
        return _strip(self.cleaned_data["mobile_phone"])


class LeadForm(RecordForm):
    class Meta:
        model = Lead
        fields = ["organization", "owner", "first_name", "last_name", "company_name", "email", "status"]

    def clean_first_name(self) -> str:
        return _strip(self.cleaned_data["first_name"])

    def clean_last_name(self) -> str:
        return _strip(self.cleaned_data["last_name"])

    def clean_company_name(self) -> str:
        return _strip(self.cleaned_data["company_name"])

    def clean_email(self) -> str:
        return _email(self.cleaned_data["email"])


class AppointmentForm(RecordForm):
    record_fields = {"regarding_account": Account, "regarding_contact": Contact}

    attendees = EmailListField(
        label=_("Attendees"),
        required=False,
        help_text=_("Email addresses, one per line or separated by commas."),
    )

    class Meta:
        model = Appointment
        fields = [
            "organization",
            "owner",
            "subject",
            "start",
            "end",
            "location",
            "status",
            "attendees",
            "regarding_account",
            "regarding_contact",
            "description",
        ]
        widgets = {"start": DateTimeInput(), "end": DateTimeInput()}

    def clean_subject(self) -> str:
        return _strip(self.cleaned_data["subject"])

    def clean_location(self) -> str:
        return _strip(self.cleaned_data["location"])

    def clean_attendees(self) -> list[str]:
        addresses = self.cleaned_data["attendees"]
        invalid = []
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                invalid.append(address)
        if invalid:
            raise forms.ValidationError(
                _("Not an email address: %(addresses)s"), params={"addresses": ", ".join(invalid)}, code="invalid"
            )
        return addresses


class TaskForm(RecordForm):
    class Meta:
        model = Task
        fields = ["organization", "owner", "subject", "due", "status", "priority", "description"]
        widgets = {"due": DateInput()}

    def clean_subject(self) -> str:
        return _strip(self.cleaned_data["subject"])


class RecordFilterForm(forms.Form):
    """Search, filter and sort a record list; invalid values are ignored, not fatal."""

    q = forms.CharField(label=_("Search"), required=False)
    owner = forms.ModelChoiceField(
        label=_("Owner"), queryset=get_user_model().objects.none(), required=False, empty_label=_("Any")
    )
    sort = forms.CharField(required=False)

    def __init__(self, *args: Any, kind: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        admin_orgs = org_ids(user, ADMIN)
        if admin_orgs:
            members = Membership.objects.filter(organization_id__in=admin_orgs).values("user_id")
            self.fields["owner"].queryset = get_user_model().objects.filter(pk__in=members).order_by("username")
        else:
            del self.fields["owner"]  # plain users see their own records only
        for name in kind.filters:
            field = kind.model._meta.get_field(name)
            if isinstance(field, models.BooleanField):
                choices = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]
            else:
                choices = [("", _("Any")), *field.choices]
            self.fields[name] = forms.ChoiceField(label=capfirst(field.verbose_name), choices=choices, required=False)
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"

    def apply(self, qs: QuerySet) -> QuerySet:
        data = self.cleaned_data if self.is_valid() else {}
        # Every word must match one of the searched fields: "ada lovelace" finds Ada Lovelace.
        for word in _strip(data.get("q")).split():
            match = Q()
            for name in self.kind.search:
                match |= Q(**{f"{name}__icontains": word})
            qs = qs.filter(match)
        if data.get("owner"):
            qs = qs.filter(owner=data["owner"])
        for name in self.kind.filters:
            value = data.get(name)
            if value in ("yes", "no"):
                qs = qs.filter(**{name: value == "yes"})
            elif value:
                qs = qs.filter(**{name: value})
        return qs.order_by(*self.kind.order_by(data.get("sort") or ""), "id")
