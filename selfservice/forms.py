"""Forms validate and normalise; the models (Mailbox.clean, crm.filters.validate_rules) hold the rules."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from crm.filters import validate_rules
from crm.folders import find_folder_record, record_choices, record_label
from crm.models import FilterOperator, RecordType, SyncFilter
from mailboxes.access import memberships
from mailboxes.forms import FieldGroup, SecretFieldsMixin
from mailboxes.models import (
    ActMethod,
    AuthType,
    CredentialsSource,
    Mailbox,
    Membership,
    Organization,
    ProfileKind,
    Role,
    find_mapped,
)

EMPTY_RULES = {"match": "all", "rules": []}


# The mailbox -------------------------------------------------------------------------------


class MyMailboxForm(SecretFieldsMixin, forms.ModelForm):
    """A user's own mailbox: its address, its sync methods and, when the server profile asks for
    them, its own credentials (write-only: never shown back, kept when left empty).

    The server profile is the administrator's choice; ``Mailbox.clean`` says which methods it allows.
    """

    class Meta:
        model = Mailbox
        fields = ["address", "incoming_method", "outgoing_method", "act_method", "username", "password"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own_credentials = self.instance.needs_own_credentials
        if self.own_credentials:
            self.secret_fields = ("password",)
            self._setup_secrets()
            self.fields["username"].help_text = _("The user name you sign in to your mailbox with.")
        else:
            self.secret_fields = ()
            self.undecryptable = []
            del self.fields["username"], self.fields["password"]
        self.fields["address"].required = True
        profile = self.instance.profile
        if profile is not None and not profile.carries_act:
            self.fields["act_method"].help_text = _(
                "Your server profile (%(kind)s) carries email only: choose None or Client."
            ) % {"kind": profile.get_kind_display()}
            if self.instance._state.adding and not self.is_bound:
                self.initial["act_method"] = ActMethod.NONE

    def field_groups(self) -> list[FieldGroup]:
        groups = [
            FieldGroup(_("Email address"), "address"),
            FieldGroup(_("Sync methods"), "incoming_method", "outgoing_method", "act_method"),
        ]
        if self.own_credentials:
            groups.append(FieldGroup(_("Your mailbox's credentials"), "username", "password"))
        return groups

    def clean_address(self) -> str:
        address = self.cleaned_data["address"].strip().lower()
        if find_mapped(address, exclude=self.instance) is not None:
            # Whose it is is not the user's to know; an administrator can move it (DOMAIN.md rule 2).
            raise ValidationError(_("This address belongs to another mailbox. Ask an administrator to move it."))
        if self._unguarded() and address != self.instance.address:
            own = (self.instance.user.email or "").strip().lower()
            if not own:
                raise ValidationError(
                    _("Your organization does not approve addresses, and your account has none: ask an administrator.")
                )
            if address != own:
                raise ValidationError(
                    _(
                        "Your organization does not approve addresses, so your mailbox can use only your own "
                        "address, %(address)s. Ask an administrator for another one."
                    ),
                    params={"address": own},
                )
        return address

    def _unguarded(self) -> bool:
        """Whether an address would sync unchecked: no approval, and a connection that reaches any
        mailbox of the server (the profile's service account, or an OAuth application) rather than
        the mailbox's own password. Then a person may use only their own account's address."""
        profile = self.instance.profile
        reaches_any = (
            profile is None
            or profile.credentials_source == CredentialsSource.PROFILE
            or profile.auth_type == AuthType.OAUTH2
        )
        return not self.instance.requires_approval and reaches_any

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self._keep_secrets(cleaned)
        if self.own_credentials:
            message = _("Your server profile uses each mailbox's own credentials: enter them.")
            if not cleaned.get("username") and "username" not in self.errors:
                self.add_error("username", message)
            if not cleaned.get("password") and "password" not in self.errors:
                self.add_error("password", message)
        return cleaned


class TrackingRuleForm(forms.ModelForm):
    class Meta:
        model = Mailbox
        fields = ["tracking_rule"]
        widgets = {"tracking_rule": forms.RadioSelect}


class TrackedFolderForm(forms.Form):
    """A folder under the person's Inbox and the record of their organization its emails regard.

    The record: one of the accounts, contacts and leads of the mailbox's organization the person
    may see; the select offers those matching ``search`` (crm.folders.record_choices).
    """

    folder_name = forms.CharField(
        label=_("Folder"),
        max_length=255,
        help_text=_(
            "The folder's name as your mail program shows it. Exchange: a folder directly under your "
            "Inbox, e.g. Acme. IMAP: the folder's full name, e.g. Projects/Acme."
        ),
    )
    regarding = forms.ChoiceField(
        label=_("Regarding"),
        help_text=_("Every email message in the folder is tracked regarding this record."),
        error_messages={"invalid_choice": _("Choose one of the records of your organization that you may see.")},
    )

    def __init__(self, *args: Any, user: Any, mailbox: Mailbox, search: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user, self.mailbox = user, mailbox
        groups, self.more = record_choices(user, mailbox.organization_id, search)
        offered = {key for _label, options in groups for key, _name in options}
        key = self.data.get("regarding", "") if self.is_bound else ""
        if key not in offered and (chosen := find_folder_record(user, mailbox.organization_id, key)) is not None:
            groups.insert(0, (_("Chosen"), [(key, record_label(chosen))]))
        self.fields["regarding"].choices = [("", "---------"), *groups]
        self.has_records = bool(groups)

    def clean_folder_name(self) -> str:
        name = self.cleaned_data["folder_name"].strip()
        if name.lower() == "inbox":
            raise ValidationError(_("The Inbox follows your tracking rule: choose a folder under it."))
        profile = self.mailbox.profile
        ews = profile is not None and profile.kind in (ProfileKind.EXCHANGE_ONPREM, ProfileKind.EXCHANGE_ONLINE)
        if ews and "/" in name:
            raise ValidationError(
                _("Exchange tracks folders directly under your Inbox: enter the folder's name, without a path.")
            )
        return name

    def clean_regarding(self) -> Any:
        found = find_folder_record(self.user, self.mailbox.organization_id, self.cleaned_data["regarding"])
        if found is None:
            raise ValidationError(self.fields["regarding"].error_messages["invalid_choice"])
        return found


class MembershipChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, membership: Membership) -> str:
        return str(membership.organization)


class SyncOrganizationForm(forms.Form):
    membership = MembershipChoiceField(
        label=_("Synchronizing organization"), queryset=Membership.objects.none(), widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        memberships = Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")
        self.fields["membership"].queryset = memberships
        self.fields["membership"].empty_label = None
        current = next((m for m in memberships if m.is_sync_organization), None)
        if current is not None:
            self.initial.setdefault("membership", current.pk)


# Sync filters ------------------------------------------------------------------------------


def parse_rules(text: str) -> Any:
    """The rules as typed: JSON text, an empty text being a filter without conditions."""
    text = (text or "").strip()
    if not text:
        return dict(EMPTY_RULES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(
            _("The rules are not valid JSON (line %(line)d, column %(column)d): %(error)s"),
            params={"line": error.lineno, "column": error.colno, "error": error.msg},
        ) from None


def rules_text(rules: Any) -> str:
    return json.dumps(rules or EMPTY_RULES, indent=2, ensure_ascii=False)


RULES_HELP = _(
    'A group {"match": "all" or "any", "rules": [...]}; each rule '
    '{"field": ..., "operator": ..., "value": ...}, or a group in turn.'
)


class RulesField(forms.CharField):
    widget = forms.Textarea(
        attrs={
            "rows": 10,
            "spellcheck": "false",
            "class": "form-control font-monospace",
            "aria-describedby": "rules-help",
        }
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(label=_("Rules"), required=False, strip=False, help_text=RULES_HELP, **kwargs)

    def to_python(self, value: Any) -> Any:
        return parse_rules(super().to_python(value))

    def prepare_value(self, value: Any) -> Any:
        # Shown again as typed after an error; as JSON text when it comes from the filter.
        return value if isinstance(value, str) else rules_text(value)


def _organization_field(form: forms.Form, organizations: QuerySet) -> None:
    field = form.fields["organization"]
    field.queryset = organizations
    field.empty_label = None
    if len(organizations) == 1:
        field.widget = forms.HiddenInput()
        form.initial["organization"] = form.initial.get("organization") or organizations[0].pk


def _validated_rules(form: forms.Form, cleaned: dict[str, Any]) -> None:
    """Check the parsed rules against the record type; the error names the bad row ("Rule 2.1: ...")."""
    record_type = cleaned.get("record_type") or getattr(form, "record_type", None)
    if record_type and "rules" in cleaned and "rules" not in form.errors:
        try:
            cleaned["rules"] = validate_rules(record_type, cleaned["rules"])
        except ValidationError as error:
            form.add_error("rules", error)


OWN_RECORDS_ONLY = _(
    "The filter: you can sync only your own records. Keep the condition “Owner is me” in the top group, "
    "with “All of these”."
)


def _own_records_only(form: forms.Form, cleaned: dict[str, Any], owner: Any, organization: Any) -> None:
    """A member who is no administrator of the filter's organization syncs only their own records.

    The engine sends whatever a filter selects to the mailbox, and such a member sees only their
    own records in the CRM: the rules must require "Owner is me" (a condition of the top group
    when it is "All of these", or its only condition). Templates (no owner) are the administrators'.
    """
    if owner is None or organization is None or "rules" not in cleaned or "rules" in form.errors:
        return
    if memberships(owner).get(organization.pk) == Role.ADMINISTRATOR:
        return
    group = cleaned["rules"]
    rows = [row for row in group["rules"] if "rules" not in row]
    is_me = any(row["field"] == "owner" and row["operator"] == FilterOperator.IS_ME for row in rows)
    if not (is_me and (group["match"] == "all" or len(group["rules"]) == 1)):
        form.add_error("rules", OWN_RECORDS_ONLY)


class FilterForm(forms.ModelForm):
    """A sync filter: a new one chooses its organization (when there are several) and record
    type; an existing one keeps them."""

    rules = RulesField()

    class Meta:
        model = SyncFilter
        fields = ["organization", "record_type", "name", "enabled", "rules"]

    def __init__(self, *args: Any, organizations: QuerySet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record_type = None
        if self.instance._state.adding:
            _organization_field(self, organizations)
        else:
            self.record_type = self.instance.record_type
            del self.fields["organization"], self.fields["record_type"]
        self.fields["name"].widget.attrs["autocomplete"] = "off"

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        _validated_rules(self, cleaned)
        adding = self.instance._state.adding
        organization = cleaned.get("organization") if adding else self.instance.organization
        _own_records_only(self, cleaned, self.instance.user if self.instance.user_id else None, organization)
        return cleaned


class PreviewForm(forms.Form):
    """What the preview needs: the organization, the record type and the rules (of a new filter;
    an existing filter's organization and record type are its own)."""

    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    record_type = forms.ChoiceField(choices=RecordType.choices)
    rules = RulesField()

    def __init__(
        self,
        *args: Any,
        organizations: QuerySet,
        owner: Any = None,
        sync_filter: SyncFilter | None = None,
        **kwargs: Any,
    ) -> None:
        """``owner``: whose filter it is (None for a template)."""
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations
        self.owner = owner
        self.sync_filter = sync_filter
        self.record_type = None
        if sync_filter is not None:
            self.record_type = sync_filter.record_type
            del self.fields["organization"], self.fields["record_type"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        _validated_rules(self, cleaned)
        organization = self.sync_filter.organization if self.sync_filter else cleaned.get("organization")
        _own_records_only(self, cleaned, self.owner, organization)
        return cleaned


class MemberChoiceField(forms.ModelChoiceField):
    """Members by full name, with their user name and organization to tell them apart."""

    def label_from_instance(self, membership: Membership) -> str:
        user = membership.user
        return _("%(name)s (%(username)s) in %(organization)s") % {
            "name": user.get_full_name() or user.get_username(),
            "username": user.get_username(),
            "organization": membership.organization,
        }


class ResetFiltersForm(forms.Form):
    """Whose filters to reset to the templates: a member of an organization the person administers."""

    membership = MemberChoiceField(label=_("Member"), queryset=Membership.objects.none())

    def __init__(self, *args: Any, organization_ids: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["membership"].queryset = (
            Membership.objects.filter(organization_id__in=organization_ids)
            .select_related("user", "organization")
            .order_by("organization__name", "user__first_name", "user__last_name", "user__username")
        )
