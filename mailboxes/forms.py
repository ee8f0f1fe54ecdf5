"""Forms validate and normalise; the models hold the rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from crmsync_portal.lib.fields import can_decrypt, is_set, stored_value
from mailboxes.models import (
    PROFILE_ENDPOINT_FIELDS,
    ActMethod,
    ApprovalStatus,
    AuthType,
    CredentialsSource,
    EmailServerProfile,
    IncomingMethod,
    Mailbox,
    Membership,
    Organization,
    OutgoingMethod,
    TestStatus,
    find_mapped,
)

KEEP_SECRET_HELP = _("A value is stored. Leave this empty to keep it.")
REENTER_ON_SERVER_CHANGE_HELP = _(
    "If you change the server (its type, address, port, TLS or autodiscover), enter it again: "
    "a stored secret is never sent to a new server."
)
SERVER_CHANGED = _("The server changed: enter the %(secret)s again.")
NOT_DECRYPTABLE = _("The stored %(secret)s cannot be decrypted with the current ENCRYPTION_KEYS: enter it again.")


class SecretFieldsMixin:
    """Secrets are write-only: never rendered back; an empty field keeps the stored value.

    A stored secret is kept as its token, without decrypting it, unless it cannot be
    decrypted or the server it would be sent to changed (``secrets_must_be_reentered``):
    then it is required again where the connection uses it, and dropped where it does not.
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
        """What the page says above the form about stored secrets it cannot use."""
        return [self._secret_message(NOT_DECRYPTABLE, name) for name in self.undecryptable]

    def _secret_message(self, message: Any, name: str) -> str:
        return message % {"secret": self.instance._meta.get_field(name).verbose_name}

    def secrets_must_be_reentered(self) -> bool:
        return False

    def secret_in_use(self, name: str, cleaned: dict[str, Any]) -> bool:
        return True

    @sensitive_variables()
    def _keep_secrets(self, cleaned: dict[str, Any]) -> None:
        """1. A typed secret is used. 2. None stored: stays empty.

        3. Stored, but undecryptable or for another server: required again if in use, else dropped.
        4. Otherwise the stored token is kept as it is.
        """
        reenter = self.secrets_must_be_reentered()
        for name in self.secret_fields:
            if name not in cleaned or cleaned[name] or not is_set(self.instance, name):
                continue
            problem = NOT_DECRYPTABLE if name in self.undecryptable else SERVER_CHANGED if reenter else None
            if problem is None:
                cleaned[name] = stored_value(self.instance, name)
            elif self.secret_in_use(name, cleaned):
                self.add_error(name, self._secret_message(problem, name))
            else:
                cleaned[name] = ""


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


class ProfileForm(SecretFieldsMixin, forms.ModelForm):
    secret_fields = ("password", "oauth_client_secret")

    class Meta:
        model = EmailServerProfile
        fields = ["organization", *EmailServerProfile.audit_fields]  # every editable field
        widgets = {"process_email_after": DateTimeInput()}

    def __init__(self, *args: Any, admin_org_ids: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_secrets()
        _setup_organization(self, admin_org_ids)
        if not self.instance._state.adding:
            for name in self.secret_fields:
                field = self.fields[name]
                field.help_text = f"{field.help_text} {REENTER_ON_SERVER_CHANGE_HELP}".strip()

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def secrets_must_be_reentered(self) -> bool:
        return not self.instance._state.adding and any(name in self.changed_data for name in PROFILE_ENDPOINT_FIELDS)

    def secret_in_use(self, name: str, cleaned: dict[str, Any]) -> bool:
        oauth = cleaned.get("auth_type") == AuthType.OAUTH2
        if name == "oauth_client_secret":
            return oauth
        return cleaned.get("credentials_source") == CredentialsSource.PROFILE and not oauth

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self._keep_secrets(cleaned)
        return cleaned

    def validate_constraints(self) -> None:
        # The default flag is moved from the old default by make_default(), not refused.
        _validate_constraints(self, {"is_default"})


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
            "username",
            "password",
            "is_active",
        ]
        widgets = {"process_email_after": DateTimeInput()}

    def __init__(self, *args: Any, admin_org_ids: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_secrets()
        self.remap_from: Mailbox | None = None
        self.admin_org_ids = admin_org_ids
        _setup_organization(self, admin_org_ids)
        members = Membership.objects.filter(organization_id__in=admin_org_ids).values("user_id")
        self.fields["user"].queryset = get_user_model().objects.filter(pk__in=members).order_by("username")
        self.fields["user"].required = False
        self.fields["profile"].queryset = EmailServerProfile.objects.filter(organization_id__in=admin_org_ids)
        if self.instance._state.adding and not self.is_bound:
            default = self.fields["profile"].queryset.filter(is_default=True).first()
            if default:
                self.initial.setdefault("profile", default.pk)

    def clean_address(self) -> str:
        return self.cleaned_data["address"].strip().lower()

    def secret_in_use(self, name: str, cleaned: dict[str, Any]) -> bool:
        profile = cleaned.get("profile")
        return bool(profile and profile.credentials_source == CredentialsSource.MAILBOX)

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
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
        elif not cleaned.get("confirm_remap"):
            self.add_error(
                "address",
                _("This address is already mapped to the mailbox of %(owner)s. Tick the box below to move it here.")
                % {"owner": mapped.owner_name},
            )
        else:
            self.remap_from = mapped

    def _check_credentials(self, cleaned: dict[str, Any]) -> None:
        profile = cleaned.get("profile")
        if profile and profile.credentials_source == "mailbox":
            if not cleaned.get("username"):
                self.add_error("username", _("This server profile uses each mailbox's own credentials: enter them."))
            if not cleaned.get("password") and "password" not in self.errors:
                self.add_error("password", _("This server profile uses each mailbox's own credentials: enter them."))

    def validate_constraints(self) -> None:
        # A confirmed remap releases the old mailbox's address before saving.
        _validate_constraints(self, {"address"} if self.remap_from is not None else set())


class MailboxFilterForm(forms.Form):
    SORTS = {
        "address": "address",
        "-address": "-address",
        "owner": "user__username",
        "-owner": "-user__username",
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
        return qs.order_by(self.SORTS.get(data.get("sort") or "address", "address"), "id")
