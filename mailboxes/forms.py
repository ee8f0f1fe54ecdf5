"""Forms validate and normalise; the models hold the rules."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Fieldset, Layout
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce, Concat, Lower, NullIf, Trim
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from crmsync_portal.lib.fields import can_decrypt, is_set, stored_value
from mailboxes.models import (
    PROFILE_ENDPOINT_FIELDS,
    PROFILE_SETTING_CONDITIONS,
    ActMethod,
    ApprovalStatus,
    CredentialsSource,
    EmailServerProfile,
    IncomingMethod,
    Mailbox,
    Membership,
    Organization,
    OutgoingMethod,
    OwnerType,
    TestStatus,
    find_mapped,
)
from mailboxes.validators import range_of

KEEP_SECRET_HELP = _("A value is stored. Leave this empty to keep it.")
REENTER_ON_SERVER_CHANGE_HELP = _(
    "If you change the server (its type, address, port, TLS or autodiscover), enter it again: "
    "a stored secret is never sent to a new server."
)
SERVER_CHANGED = _("The server changed: enter the %(secret)s again.")
NOT_DECRYPTABLE = _("The stored %(secret)s cannot be decrypted with the current ENCRYPTION_KEYS: enter it again.")
NOT_KEPT = _("For your security the %(secret)s was not kept; enter it again.")


def _choice(value: Any) -> str:
    """A cleaned or stored value as the form submits it: a related object by its key."""
    if value is None:
        return ""
    return str(value.pk) if isinstance(value, models.Model) else str(value)


class FieldGroup:
    """Fields shown together under a legend; ``when`` limits them to some choices of other fields.

    ``when={"kind": {...}}`` means the fields apply only while the form's ``kind`` is one of those.
    The fieldset says so in data-for-kind="..." and portal.js hides it otherwise; without
    JavaScript every group shows, its legend says what it is for, and the form ignores the
    fields that do not apply (FieldGroupsMixin).
    """

    def __init__(self, legend: Any, *fields: str, when: Mapping[str, Collection[Any]] | None = None) -> None:
        self.legend = legend
        self.fields = fields
        self.when = {name: sorted(_choice(c) for c in choices) for name, choices in (when or {}).items()}

    def applies(self, values: Mapping[str, Any]) -> bool:
        return all(_choice(values.get(name)) in choices for name, choices in self.when.items())

    def fieldset(self) -> Fieldset:
        conditions = {f"data_for_{name}": " ".join(choices) for name, choices in self.when.items()}
        return Fieldset(self.legend, *self.fields, data_field_group=True, **conditions)


class FieldGroupsMixin:
    """Renders the fields in their groups, and ignores the fields that do not apply.

    The form defines ``field_groups() -> list[FieldGroup]``. A field that does not apply to the
    choices made is set back to its default however it was submitted, and any error of its own
    is dropped: it is hidden, and it is not saved.
    """

    field_groups: Callable[[], list[FieldGroup]]

    @property
    def helper(self) -> FormHelper:
        helper = FormHelper()
        helper.form_tag = False  # the template has the <form>, its CSRF token and its buttons
        helper.disable_csrf = True
        helper.layout = Layout(*(group.fieldset() for group in self.field_groups()))
        return helper

    def applies(self, name: str, values: Mapping[str, Any]) -> bool:
        return all(group.applies(values) for group in self.field_groups() if name in group.fields)

    def _ignore_fields_not_applying(self, cleaned: dict[str, Any]) -> None:
        model = self._meta.model
        for group in self.field_groups():
            if group.applies(cleaned):
                continue
            for name in group.fields:
                self.errors.pop(name, None)
                cleaned[name] = model._meta.get_field(name).get_default()

    def _limit_numbers(self) -> None:
        """Number inputs get their model field's range as min and max, and errors that state it."""
        for name, field in self.fields.items():
            if isinstance(field, forms.IntegerField) and (limits := range_of(self._meta.model._meta.get_field(name))):
                limits.limit(field)


class SecretFieldsMixin(FieldGroupsMixin):
    """Secrets are write-only: never rendered back; an empty field keeps the stored value.

    A stored secret is kept as its token, without decrypting it, unless it cannot be
    decrypted or the server it would be sent to changed (``secrets_must_be_reentered``):
    then it is required again. A secret that does not apply is dropped. A secret typed into
    a form shown again with errors is not shown back either: its field says to type it again.
    """

    secret_fields: tuple[str, ...] = ()

    def _setup_secrets(self) -> None:
        self.undecryptable: list[str] = []
        for name in self.secret_fields:
            field = self.fields[name]
            field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            field.required = False
            if not is_set(self.instance, name):
                continue
            if can_decrypt(self.instance, name):
                field.help_text = KEEP_SECRET_HELP
            else:
                self.undecryptable.append(name)
                field.help_text = self._secret_message(NOT_DECRYPTABLE, name)

    @property
    def secret_problems(self) -> list[str]:
        """What the page says above the form about stored secrets it cannot use (and would use)."""
        stored = {name: getattr(self.instance, name, None) for group in self.field_groups() for name in group.when}
        return [
            self._secret_message(NOT_DECRYPTABLE, name) for name in self.undecryptable if self.applies(name, stored)
        ]

    def _secret_message(self, message: Any, name: str) -> str:
        return message % {"secret": self.instance._meta.get_field(name).verbose_name}

    def secrets_must_be_reentered(self, cleaned: dict[str, Any]) -> bool:
        return False

    def secret_in_use(self, name: str, cleaned: dict[str, Any]) -> bool:
        return True

    @sensitive_variables()
    def _keep_secrets(self, cleaned: dict[str, Any]) -> None:
        """1. A typed secret is used. 2. None stored, or its field does not apply: stays empty.

        3. Stored, but undecryptable or for another server: required again if in use, else dropped.
        4. Otherwise the stored token is kept as it is.
        """
        reenter = self.secrets_must_be_reentered(cleaned)
        for name in self.secret_fields:
            if name not in cleaned or cleaned[name] or not is_set(self.instance, name):
                continue
            if not self.applies(name, cleaned):
                cleaned[name] = ""
                continue
            problem = NOT_DECRYPTABLE if name in self.undecryptable else SERVER_CHANGED if reenter else None
            if problem is None:
                cleaned[name] = stored_value(self.instance, name)
            elif self.secret_in_use(name, cleaned):
                self.add_error(name, self._secret_message(problem, name))
            else:
                cleaned[name] = ""

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and self.errors:
            self._say_typed_secrets_were_not_kept()

    def _say_typed_secrets_were_not_kept(self) -> None:
        """The page comes back without the secrets just typed: say so where each was typed."""
        for name in self.secret_fields:
            typed = self.data.get(self.add_prefix(name))
            if typed and name not in self.errors and self.applies(name, self.cleaned_data):
                # The bound field copied the help text when validation created it.
                self.fields[name].help_text = self[name].help_text = self._secret_message(NOT_KEPT, name)


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def _validate_constraints(form: forms.ModelForm, also_exclude: set[str]) -> None:
    try:
        form.instance.validate_constraints(exclude=form._get_validation_exclusions() | also_exclude)
    except forms.ValidationError as error:
        form._update_errors(error)


def _setup_organization(form: forms.ModelForm, admin_org_ids: list[Any]) -> None:
    """Offer the administrator's organizations; an existing object stays where it is."""
    orgs = form.fields["organization"]
    orgs.queryset = Organization.objects.filter(pk__in=admin_org_ids)
    # UUID primary keys are set on instantiation: only _state tells a new object apart.
    if not form.instance._state.adding:
        orgs.disabled = True
    elif len(admin_org_ids) == 1:
        orgs.initial = admin_org_ids[0]


def _profile_group(legend: Any, *fields: str) -> FieldGroup:
    return FieldGroup(legend, *fields, when=PROFILE_SETTING_CONDITIONS.get(fields[0]))


PROFILE_GROUPS = [
    FieldGroup(_("Server profile"), "organization", "name", "kind"),
    _profile_group(
        _("Exchange server (for Exchange Online and Exchange Server on-premises profiles)"),
        "ews_url",
        "use_autodiscover",
    ),
    _profile_group(
        _("POP3/IMAP and SMTP servers (for POP3/SMTP and IMAP/SMTP profiles)"),
        "incoming_host",
        "incoming_port",
        "incoming_tls",
        "outgoing_host",
        "outgoing_port",
        "outgoing_tls",
    ),
    FieldGroup(_("Authentication"), "auth_type", "credentials_source"),
    _profile_group(
        _("Service account (for basic or NTLM authentication with the credentials of this profile)"),
        "username",
        "password",
    ),
    _profile_group(
        _("OAuth 2.0 application (for Exchange Online profiles with OAuth 2.0 authentication)"),
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_client_secret",
    ),
    FieldGroup(
        _("Synchronization"),
        "polling_interval_minutes",
        "max_concurrent_connections",
        "timeout_seconds",
        "process_email_after",
        "is_default",
    ),
]


class ProfileForm(SecretFieldsMixin, forms.ModelForm):
    secret_fields = ("password", "oauth_client_secret")

    class Meta:
        model = EmailServerProfile
        fields = ["organization", *EmailServerProfile.audit_fields]  # every editable field
        widgets = {"process_email_after": DateTimeInput()}
        error_messages = {"kind": {"required": _("Choose the server type.")}}

    def __init__(self, *args: Any, admin_org_ids: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_secrets()
        self._limit_numbers()
        _setup_organization(self, admin_org_ids)
        if not self.instance._state.adding:
            for name in self.secret_fields:
                field = self.fields[name]
                field.help_text = f"{field.help_text} {REENTER_ON_SERVER_CHANGE_HELP}".strip()

    def field_groups(self) -> list[FieldGroup]:
        return PROFILE_GROUPS

    def add_error(self, field: str | None, error: Any) -> None:
        # A model rule ("Required for a POP3/IMAP profile.") does not repeat on a field that
        # already says what is wrong with it ("Enter a port number from 1 to 65535.").
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            error = ValidationError({k: v for k, v in error.error_dict.items() if k not in self.errors})
        super().add_error(field, error)

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def secrets_must_be_reentered(self, cleaned: dict[str, Any]) -> bool:
        return not self.instance._state.adding and any(
            name in self.changed_data and self.applies(name, cleaned) for name in PROFILE_ENDPOINT_FIELDS
        )

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self._ignore_fields_not_applying(cleaned)
        self._keep_secrets(cleaned)
        return cleaned

    def validate_constraints(self) -> None:
        # The default flag is moved from the old default by make_default(), not refused.
        _validate_constraints(self, {"is_default"})


class UserChoiceField(forms.ModelChoiceField):
    """Users as every list shows them: by full name, with the user name to tell them apart."""

    def label_from_instance(self, user: Any) -> str:
        full_name = user.get_full_name()
        if not full_name:
            return user.get_username()
        return _("%(full_name)s (%(username)s)") % {"full_name": full_name, "username": user.get_username()}


def by_full_name(users: Any) -> Any:
    """Users ordered by full name (their user name where they have none), case-insensitively."""
    full_name = NullIf(Trim(Concat("first_name", Value(" "), "last_name")), Value(""))
    return users.annotate(sort_name=Lower(Coalesce(full_name, "username"))).order_by("sort_name", "username")


class MailboxForm(SecretFieldsMixin, forms.ModelForm):
    secret_fields = ("password",)

    confirm_remap = forms.BooleanField(
        label=_("Move this address here from the mailbox it is mapped to now"),
        required=False,
        help_text=_("The other mailbox loses the address and stops synchronizing."),
    )

    class Meta:
        model = Mailbox
        fields = [
            "organization",
            "owner_type",
            "user",
            "queue_name",
            "address",
            "profile",
            "incoming_method",
            "outgoing_method",
            "act_method",
            "tracking_rule",
            "process_email_after",
            "delete_processed",
            "username",
            "password",
            "is_active",
        ]
        field_classes = {"user": UserChoiceField}
        widgets = {"process_email_after": DateTimeInput()}

    def __init__(self, *args: Any, admin_org_ids: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_secrets()
        self.remap_from: Mailbox | None = None
        # Another mailbox of the administrator's organizations that has the address typed: only
        # then does the form offer to move the address here.
        self.remap_candidate: Mailbox | None = None
        self.admin_org_ids = admin_org_ids
        _setup_organization(self, admin_org_ids)
        members = Membership.objects.filter(organization_id__in=admin_org_ids).values("user_id")
        self.fields["user"].queryset = by_full_name(get_user_model().objects.filter(pk__in=members))
        self.fields["user"].required = False
        profiles = EmailServerProfile.objects.filter(organization_id__in=admin_org_ids)
        self.fields["profile"].queryset = profiles
        if self.instance._state.adding and not self.is_bound:
            default = profiles.filter(is_default=True).first()
            if default:
                self.initial.setdefault("profile", default.pk)

    def field_groups(self) -> list[FieldGroup]:
        address = ("address", "confirm_remap") if self.remap_candidate else ("address",)
        return [
            FieldGroup(_("Organization and owner"), "organization", "owner_type"),
            FieldGroup(_("User (for a mailbox owned by a user)"), "user", when={"owner_type": {OwnerType.USER}}),
            FieldGroup(
                _("Queue (for a mailbox owned by a queue)"), "queue_name", when={"owner_type": {OwnerType.QUEUE}}
            ),
            FieldGroup(_("Email address"), *address),
            FieldGroup(
                _("Synchronization"),
                "profile",
                "incoming_method",
                "outgoing_method",
                "act_method",
                "tracking_rule",
                "process_email_after",
                "is_active",
            ),
            FieldGroup(
                _("Forward mailbox (for a mailbox whose incoming email is “Forward mailbox”)"),
                "delete_processed",
                when={"incoming_method": {IncomingMethod.FORWARD_MAILBOX}},
            ),
            FieldGroup(
                _("Credentials of this mailbox (for server profiles that use each mailbox's own credentials)"),
                "username",
                "password",
            ),
        ]

    def clean_address(self) -> str:
        return self.cleaned_data["address"].strip().lower()

    def secret_in_use(self, name: str, cleaned: dict[str, Any]) -> bool:
        profile = cleaned.get("profile")
        return bool(profile and profile.credentials_source == CredentialsSource.MAILBOX)

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self._ignore_fields_not_applying(cleaned)
        self._keep_secrets(cleaned)
        self._check_remap(cleaned)
        self._check_credentials(cleaned)
        self._check_user(cleaned)
        return cleaned

    def _check_user(self, cleaned: dict[str, Any]) -> None:
        # The choices hold the members of all the admin's organizations; the owner must be of this one.
        user, organization = cleaned.get("user"), cleaned.get("organization")
        if user and organization and not Membership.objects.filter(user=user, organization=organization).exists():
            self.add_error("user", _("Choose a member of the mailbox's organization."))

    def _check_remap(self, cleaned: dict[str, Any]) -> None:
        address = cleaned.get("address")
        if not address:
            return
        mapped = find_mapped(address, exclude=self.instance)
        if mapped is None:
            return
        if mapped.organization_id not in self.admin_org_ids:
            # Say no more: which addresses other organizations use is theirs to know.
            self.add_error("address", _("This address is not available."))
            return
        self.remap_candidate = mapped
        label = _("Move this address here from the mailbox of %(owner)s") % {"owner": mapped.owner_name}
        # The bound field copied the label when validation created it.
        self.fields["confirm_remap"].label = self["confirm_remap"].label = label
        if not cleaned.get("confirm_remap"):
            self.add_error(
                "address",
                _("This address is already mapped to the mailbox of %(owner)s. Tick the box below to move it here.")
                % {"owner": mapped.owner_name},
            )
        else:
            self.remap_from = mapped

    def _check_credentials(self, cleaned: dict[str, Any]) -> None:
        profile = cleaned.get("profile")
        if profile and profile.credentials_source == CredentialsSource.MAILBOX:
            if not cleaned.get("username"):
                self.add_error("username", _("This server profile uses each mailbox's own credentials: enter them."))
            if not cleaned.get("password") and "password" not in self.errors:
                self.add_error("password", _("This server profile uses each mailbox's own credentials: enter them."))

    def validate_constraints(self) -> None:
        # A confirmed remap releases the old mailbox's address before saving.
        _validate_constraints(self, {"address"} if self.remap_from is not None else set())


class MailboxFilterForm(forms.Form):
    # A field to order by, or for the owner (a user's name or a queue's) the queryset's own sort.
    SORTS: dict[str, Any] = {
        "address": "address",
        "-address": "-address",
        "owner": lambda mailboxes: mailboxes.order_by_owner(),
        "-owner": lambda mailboxes: mailboxes.order_by_owner(descending=True),
        "profile": "profile__name",
        "-profile": "-profile__name",
        "approval": "approval_status",
        "-approval": "-approval_status",
        "status": "test_overall",
        "-status": "-test_overall",
        "updated": "updated",
        "-updated": "-updated",
    }

    q = forms.CharField(label=_("Search"), required=False)
    profile = forms.ModelChoiceField(
        label=_("Profile"), queryset=EmailServerProfile.objects.none(), required=False, empty_label=_("Any")
    )
    approval = forms.ChoiceField(label=_("Approval"), choices=[("", _("Any"))] + ApprovalStatus.choices, required=False)
    status = forms.ChoiceField(label=_("Test status"), choices=[("", _("Any"))] + TestStatus.choices, required=False)
    incoming = forms.ChoiceField(label=_("Incoming"), choices=[("", _("Any"))] + IncomingMethod.choices, required=False)
    outgoing = forms.ChoiceField(label=_("Outgoing"), choices=[("", _("Any"))] + OutgoingMethod.choices, required=False)
    act = forms.ChoiceField(label=_("ACT"), choices=[("", _("Any"))] + ActMethod.choices, required=False)
    sort = forms.ChoiceField(choices=[(k, k) for k in SORTS], required=False)

    def __init__(self, *args: Any, org_ids: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = EmailServerProfile.objects.filter(organization_id__in=org_ids)
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"

    def apply(self, qs: Any) -> Any:
        """Filter and sort a mailbox queryset; invalid values are ignored, not fatal."""
        data = self.cleaned_data if self.is_valid() else {}
        if q := (data.get("q") or "").strip():
            qs = qs.filter(
                Q(address__icontains=q)
                | Q(queue_name__icontains=q)
                | Q(user__username__icontains=q)
                | Q(user__first_name__icontains=q)
                | Q(user__last_name__icontains=q)
                | Q(user__email__icontains=q)
            )
        if data.get("profile"):
            qs = qs.filter(profile=data["profile"])
        for name, field in (
            ("approval", "approval_status"),
            ("status", "test_overall"),
            ("incoming", "incoming_method"),
            ("outgoing", "outgoing_method"),
            ("act", "act_method"),
        ):
            if data.get(name):
                qs = qs.filter(**{field: data[name]})
        order = self.SORTS.get(data.get("sort") or "address", "address")
        return order(qs) if callable(order) else qs.order_by(order, "id")
