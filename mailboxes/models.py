"""Organizations, memberships, email server profiles and mailbox records.

The rules of DOMAIN.md that belong to a single row live here: which sync
methods a mailbox may use, approval, and the one-of rules (one synchronizing
organization per user, one mailbox per user, one user per address).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Concat, Lower, NullIf, Trim
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.display import display_value
from audit.log import Actor
from audit.mixins import AuditedModel
from crmsync_portal.lib.fields import EncryptedTextField, is_set
from mailboxes.validators import MINUTES_MESSAGE, PORT_MESSAGE, SECONDS_MESSAGE, RangeValidator


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", _("Administrator")
    APPROVER = "approver", _("Approver")
    AUDITOR = "auditor", _("Auditor")
    USER = "user", _("User")


class Organization(AuditedModel):
    audit_name = "organization"
    audit_fields = (
        "name",
        "require_approval_user_mailboxes",
        "require_approval_queue_mailboxes",
        "ignore_logical_deletes",
        "auto_approve_instance_changes",
        "tracked_category",
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200, unique=True)
    require_approval_user_mailboxes = models.BooleanField(_("require approval of user mailbox addresses"), default=True)
    require_approval_queue_mailboxes = models.BooleanField(
        _("require approval of queue mailbox addresses"), default=True
    )
    ignore_logical_deletes = models.BooleanField(
        _("ignore logical deletes"),
        default=False,
        help_text=_("Keep mailbox items when their CRM record stops matching the sync filters."),
    )
    auto_approve_instance_changes = models.BooleanField(_("auto-approve sync-instance changes"), default=False)
    tracked_category = models.CharField(
        _("tracking category"),
        max_length=255,
        default="Tracked to CRM",
        help_text=_("Mailbox items with this category are created in the CRM; other items stay private."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")

    def __str__(self) -> str:
        return self.name

    def audit_organization(self) -> Organization:
        return self


class Membership(AuditedModel):
    """A user's role in an organization; one membership is the synchronizing one."""

    audit_name = "membership"
    audit_fields = ("user", "organization", "role", "is_sync_organization")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("organization")
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.USER)
    is_sync_organization = models.BooleanField(_("synchronizing organization"), default=False)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org"),
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(is_sync_organization=True),
                name="one_sync_organization_per_user",
                violation_error_message=_("A user has one synchronizing organization."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.get_role_display()})"

    def audit_organization(self) -> Organization:
        return self.organization

    @classmethod
    def add(cls, actor: Actor, user: Any, organization: Organization, role: str) -> Membership:
        """Add a member; a user's first organization becomes the synchronizing one."""
        with transaction.atomic():
            first = not cls.objects.select_for_update().filter(user=user).exists()
            membership = cls(user=user, organization=organization, role=role, is_sync_organization=first)
            membership.save_audited(actor)
        return membership

    def make_synchronizing(self, actor: Actor) -> None:
        """Make this the user's synchronizing organization: explicit and audited."""
        if self.is_sync_organization:
            return
        with transaction.atomic():
            for previous in Membership.objects.select_for_update().filter(user=self.user, is_sync_organization=True):
                previous.is_sync_organization = False
                previous.save_audited(
                    actor, "membership.sync_organization_released", update_fields=["is_sync_organization"]
                )
            self.is_sync_organization = True
            self.save_audited(actor, "membership.sync_organization_taken", update_fields=["is_sync_organization"])


class ProfileKind(models.TextChoices):
    EXCHANGE_ONPREM = "exchange_onprem", _("Exchange Server (on-premises, EWS)")
    EXCHANGE_ONLINE = "exchange_online", _("Exchange Online (EWS)")
    POP3_SMTP = "pop3_smtp", _("POP3/SMTP")
    IMAP_SMTP = "imap_smtp", _("IMAP/SMTP")


class AuthType(models.TextChoices):
    BASIC = "basic", _("Basic")
    NTLM = "ntlm", _("NTLM")
    OAUTH2 = "oauth2", _("OAuth 2.0 client credentials")


class CredentialsSource(models.TextChoices):
    PROFILE = "profile", _("Credentials of this profile (service account)")
    MAILBOX = "mailbox", _("Each mailbox's own credentials")


EXCHANGE_KINDS = {ProfileKind.EXCHANGE_ONPREM, ProfileKind.EXCHANGE_ONLINE}
POP3_IMAP_KINDS = {ProfileKind.POP3_SMTP, ProfileKind.IMAP_SMTP}

# The ranges of the profile's numbers: validated, and stated in the help text, the errors and the inputs.
PORT_RANGE = RangeValidator(1, 65535, PORT_MESSAGE)
POLLING_RANGE = RangeValidator(1, 1440, MINUTES_MESSAGE)
CONNECTIONS_RANGE = RangeValidator(1, 300)
TIMEOUT_RANGE = RangeValidator(5, 600, SECONDS_MESSAGE)

# A change to any of these invalidates the Test & Enable results of the profile's mailboxes.
PROFILE_CONNECTION_FIELDS = (
    "kind",
    "ews_url",
    "use_autodiscover",
    "auth_type",
    "credentials_source",
    "username",
    "password",
    "oauth_tenant_id",
    "oauth_client_id",
    "oauth_client_secret",
    "incoming_host",
    "incoming_port",
    "incoming_tls",
    "outgoing_host",
    "outgoing_port",
    "outgoing_tls",
)

# Where the credentials are sent: a change to any of these needs the secrets typed again, or
# whoever can edit the profile could point it at their own server and receive the stored password.
PROFILE_ENDPOINT_FIELDS = (
    "kind",
    "ews_url",
    "use_autodiscover",
    "incoming_host",
    "incoming_port",
    "incoming_tls",
    "outgoing_host",
    "outgoing_port",
    "outgoing_tls",
)

# The settings that apply to some choices only, with those choices. The form shows such a setting
# only while it applies and clears it on saving; one that does not apply is no part of the
# connection (connection_changed).
PROFILE_SETTING_CONDITIONS: dict[str, dict[str, set[str]]] = {
    **dict.fromkeys(("ews_url", "use_autodiscover"), {"kind": EXCHANGE_KINDS}),
    **dict.fromkeys(
        ("incoming_host", "incoming_port", "incoming_tls", "outgoing_host", "outgoing_port", "outgoing_tls"),
        {"kind": POP3_IMAP_KINDS},
    ),
    **dict.fromkeys(
        ("username", "password"),
        {"auth_type": {AuthType.BASIC, AuthType.NTLM}, "credentials_source": {CredentialsSource.PROFILE}},
    ),
    **dict.fromkeys(
        ("oauth_tenant_id", "oauth_client_id", "oauth_client_secret"),
        {"kind": {ProfileKind.EXCHANGE_ONLINE}, "auth_type": {AuthType.OAUTH2}},
    ),
}


class EmailServerProfile(AuditedModel):
    audit_name = "server_profile"
    audit_fields = (
        "name",
        *PROFILE_CONNECTION_FIELDS,
        "polling_interval_minutes",
        "max_concurrent_connections",
        "process_email_after",
        "timeout_seconds",
        "is_default",
    )
    secret_fields = ("password", "oauth_client_secret")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="profiles", verbose_name=_("organization")
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("server type"), max_length=20, choices=ProfileKind.choices)
    ews_url = models.URLField(
        _("EWS URL"), blank=True, help_text=_("For example https://mail.example.com/EWS/Exchange.asmx")
    )
    use_autodiscover = models.BooleanField(_("locate the server by autodiscover"), default=False)
    auth_type = models.CharField(_("authentication"), max_length=10, choices=AuthType.choices, default=AuthType.BASIC)
    credentials_source = models.CharField(
        _("credentials"), max_length=10, choices=CredentialsSource.choices, default=CredentialsSource.PROFILE
    )
    username = models.CharField(_("user name"), max_length=254, blank=True)
    password = EncryptedTextField(_("password"), blank=True)
    oauth_tenant_id = models.CharField(_("OAuth tenant id"), max_length=100, blank=True)
    oauth_client_id = models.CharField(_("OAuth client id"), max_length=100, blank=True)
    oauth_client_secret = EncryptedTextField(_("OAuth client secret"), blank=True)
    incoming_host = models.CharField(_("incoming server"), max_length=253, blank=True)
    incoming_port = models.PositiveIntegerField(
        _("incoming port"),
        null=True,
        blank=True,
        validators=[PORT_RANGE],
        help_text=PORT_RANGE.describe(_("From %(min)s to %(max)s; usually 995 for POP3 or 993 for IMAP, with TLS.")),
    )
    incoming_tls = models.BooleanField(_("incoming TLS"), default=True)
    outgoing_host = models.CharField(_("outgoing (SMTP) server"), max_length=253, blank=True)
    outgoing_port = models.PositiveIntegerField(
        _("outgoing port"),
        null=True,
        blank=True,
        validators=[PORT_RANGE],
        help_text=PORT_RANGE.describe(_("From %(min)s to %(max)s; usually 587 (STARTTLS) or 465 (TLS).")),
    )
    outgoing_tls = models.BooleanField(_("outgoing TLS"), default=True)
    polling_interval_minutes = models.PositiveIntegerField(
        _("polling interval (minutes)"),
        default=5,
        validators=[POLLING_RANGE],
        help_text=POLLING_RANGE.describe(_("How often each mailbox is checked: every %(min)s to %(max)s minutes.")),
    )
    max_concurrent_connections = models.PositiveIntegerField(
        _("maximum concurrent connections"),
        default=10,
        validators=[CONNECTIONS_RANGE],
        help_text=CONNECTIONS_RANGE.describe(_("Connections to the server at the same time: %(min)s to %(max)s.")),
    )
    process_email_after = models.DateTimeField(_("process email received after"), null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(
        _("connection timeout (seconds)"),
        default=120,
        validators=[TIMEOUT_RANGE],
        help_text=TIMEOUT_RANGE.describe(_("How long to wait for the server: %(min)s to %(max)s seconds.")),
    )
    is_default = models.BooleanField(_("default for new mailboxes"), default=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("email server profile")
        verbose_name_plural = _("email server profiles")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                name="unique_profile_name_per_org",
                violation_error_message=_("A server profile with this name exists already."),
            ),
            models.UniqueConstraint(
                fields=["organization"], condition=models.Q(is_default=True), name="one_default_profile_per_org"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("profile-detail", args=[self.pk])

    def audit_organization(self) -> Organization:
        return self.organization

    @property
    def is_exchange(self) -> bool:
        return self.kind in EXCHANGE_KINDS

    @property
    def carries_act(self) -> bool:
        """POP3/IMAP profiles carry email only, never appointments, contacts and tasks."""
        return self.is_exchange

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.is_exchange:
            if not self.ews_url and not self.use_autodiscover:
                errors["ews_url"] = _("Enter the EWS URL, or choose to locate the server by autodiscover.")
            if self.auth_type == AuthType.OAUTH2:
                if self.kind != ProfileKind.EXCHANGE_ONLINE:
                    errors["auth_type"] = _("OAuth 2.0 is available for Exchange Online only.")
                else:
                    for name in ("oauth_tenant_id", "oauth_client_id", "oauth_client_secret"):
                        if not is_set(self, name):
                            errors[name] = _("Required for OAuth 2.0.")
        elif self.kind in POP3_IMAP_KINDS:
            # Without a server type (the form asks for it) nothing that depends on it is checked.
            for name in ("incoming_host", "incoming_port", "outgoing_host", "outgoing_port"):
                if not getattr(self, name):
                    errors[name] = _("Required for a POP3/IMAP profile.")
            if self.auth_type == AuthType.OAUTH2:
                errors["auth_type"] = _("OAuth 2.0 is available for Exchange Online only.")
        if self.credentials_source == CredentialsSource.PROFILE and self.auth_type != AuthType.OAUTH2:
            if not self.username:
                errors["username"] = _("Required when the profile's own credentials are used.")
        if errors:
            raise ValidationError(errors)

    def applies(self, name: str) -> bool:
        """Whether a setting applies to this profile's server type and authentication."""
        conditions = PROFILE_SETTING_CONDITIONS.get(name, {})
        return all(getattr(self, chooser) in choices for chooser, choices in conditions.items())

    def changed_connection_fields(self) -> list[str]:
        """The connection settings that apply and changed since loading (secrets compared as stored).

        A setting that stopped applying did so because the type or authentication changed,
        and those are connection settings themselves.
        """
        loaded = getattr(self, "_audit_loaded", {})
        return [
            name
            for name in PROFILE_CONNECTION_FIELDS
            if self.applies(name) and loaded.get(name) != self.__dict__.get(name)
        ]

    @property
    def connection_changed(self) -> bool:
        return bool(self.changed_connection_fields())

    def uses_secret(self, name: str) -> bool:
        """Whether a connection sends this secret, with the settings as they are now."""
        if name == "oauth_client_secret":
            return self.auth_type == AuthType.OAUTH2
        return self.credentials_source == CredentialsSource.PROFILE and self.auth_type != AuthType.OAUTH2

    def save_audited(self, actor: Actor, action: str | None = None, **save_kwargs: Any) -> None:
        """Save and audit; changed connection settings or credentials reset the mailboxes' tests.

        1. Note (before saving) whether a connection setting or credential changed.
        2. Save and record the profile's own change.
        3. In the same transaction, set each of its mailboxes' tests back to Not run
           and disable their channels, one audit event per mailbox that was tested.
        """
        update_fields = save_kwargs.get("update_fields")
        changed = not self._state.adding and any(
            update_fields is None or name in update_fields for name in self.changed_connection_fields()
        )
        with transaction.atomic():
            super().save_audited(actor, action, **save_kwargs)
            if changed:
                self.reset_mailbox_tests(actor)

    def reset_mailbox_tests(self, actor: Actor) -> int:
        """Set the tests of this profile's mailboxes back to Not run; returns how many were reset."""
        untested = models.Q(
            test_incoming=TestStatus.NOT_RUN,
            test_outgoing=TestStatus.NOT_RUN,
            test_act=TestStatus.NOT_RUN,
            test_overall=TestStatus.NOT_RUN,
            enabled_incoming=False,
            enabled_outgoing=False,
            enabled_act=False,
        )
        n = 0
        with transaction.atomic():
            for mailbox in self.mailboxes.select_for_update().exclude(untested).select_related("organization"):
                fields = mailbox.reset_tests()
                mailbox.save_audited(actor, "mailbox.tests_reset", update_fields=fields)
                n += 1
        return n

    def settings_shown(self) -> list[tuple[str, Any]]:
        """(name, value in words) of each setting that applies, for the profile's page.

        Choices show their labels and booleans Yes/No (as in the audit log); a secret shows
        whether one is stored, never its value.
        """
        rows = []
        for name in self.audit_fields:
            if name == "name" or not self.applies(name):
                continue
            field = self._meta.get_field(name)
            if name in self.secret_fields:
                value = _("stored") if is_set(self, name) else _("not set")
            else:
                value = display_value(field, getattr(self, name))
            rows.append((capfirst(field.verbose_name), value))
        return rows

    def mailbox_addresses(self, limit: int = 10) -> list[str]:
        return [m.address or str(m) for m in self.mailboxes.select_related("user")[:limit]]

    def make_default(self, actor: Actor) -> None:
        with transaction.atomic():
            for other in (
                EmailServerProfile.objects.select_for_update()
                .filter(organization_id=self.organization_id, is_default=True)
                .exclude(pk=self.pk)
            ):
                other.is_default = False
                other.save_audited(actor, update_fields=["is_default", "updated"])
            self.is_default = True
            self.save_audited(actor)


class IncomingMethod(models.TextChoices):
    NONE = "none", _("None")
    SERVER_SIDE = "server_side", _("Server-side synchronization")
    CLIENT = "client", _("Client (desktop)")
    FORWARD_MAILBOX = "forward_mailbox", _("Forward mailbox")


class SyncMethod(models.TextChoices):
    NONE = "none", _("None")
    SERVER_SIDE = "server_side", _("Server-side synchronization")
    CLIENT = "client", _("Client (desktop)")


# Outgoing email and ACT offer the same choices; the names say which channel a value is for.
OutgoingMethod = SyncMethod
ActMethod = SyncMethod


class ApprovalStatus(models.TextChoices):
    EMPTY = "empty", _("Empty")
    PENDING = "pending", _("Pending approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class TestStatus(models.TextChoices):
    __test__ = False  # not a test class, whatever pytest thinks of the name
    NOT_RUN = "not_run", _("Not run")
    SUCCESS = "success", _("Success")
    FAILURE = "failure", _("Failure")


class TrackingRule(models.TextChoices):
    ALL = "all", _("All email messages")
    REPLIES = "replies", _("Replies to CRM email")
    FROM_CRM_RECORDS = "crm_records", _("From CRM leads, contacts and accounts")
    FROM_EMAIL_ENABLED = "email_enabled", _("From CRM records that are email enabled")
    NONE = "none", _("No email messages")


class OwnerType(models.TextChoices):
    USER = "user", _("User")
    QUEUE = "queue", _("Queue")


class Channel(models.TextChoices):
    INCOMING = "incoming", _("Incoming email")
    OUTGOING = "outgoing", _("Outgoing email")
    ACT = "act", _("Appointments, contacts and tasks")


# (audited name, attribute): what a mailbox's test results depend on besides its profile.
MAILBOX_CONNECTION_FIELDS = (
    ("address", "address"),
    ("profile", "profile_id"),
    ("username", "username"),
    ("password", "password"),
)


class MailboxQuerySet(models.QuerySet):
    def for_list(self) -> MailboxQuerySet:
        return self.select_related("user", "profile", "organization")

    def order_by_owner(self, descending: bool = False) -> MailboxQuerySet:
        """Sort by the owner's name as the page shows it (``Mailbox.owner_name``), users and queues together.

        A queue's name, else the user's full name, else the user name; case does not matter.
        """
        full_name = Trim(Concat("user__first_name", Value(" "), "user__last_name"))
        name = Lower(
            Case(
                When(owner_type=OwnerType.QUEUE, then=F("queue_name")),
                default=Coalesce(NullIf(full_name, Value("")), "user__username"),
            )
        )
        return self.order_by(name.desc() if descending else name.asc(), "id")


class Mailbox(AuditedModel):
    audit_name = "mailbox"
    audit_fields = (
        "owner_type",
        "user",
        "queue_name",
        "address",
        "profile",
        "incoming_method",
        "outgoing_method",
        "act_method",
        "approval_status",
        "tracking_rule",
        "process_email_after",
        "delete_processed",
        "username",
        "password",
        "is_active",
        "enabled_incoming",
        "enabled_outgoing",
        "enabled_act",
        "disabled_reason",
    )
    secret_fields = ("password",)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="mailboxes", verbose_name=_("organization")
    )
    owner_type = models.CharField(_("owner"), max_length=10, choices=OwnerType.choices, default=OwnerType.USER)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="mailbox",
        verbose_name=_("user"),
        error_messages={"unique": _("This user has a mailbox already: a user has one primary mailbox.")},
    )
    queue_name = models.CharField(_("queue name"), max_length=200, blank=True)
    address = models.EmailField(_("email address"), blank=True)
    profile = models.ForeignKey(
        EmailServerProfile,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="mailboxes",
        verbose_name=_("server profile"),
    )
    incoming_method = models.CharField(
        _("incoming email"), max_length=20, choices=IncomingMethod.choices, default=IncomingMethod.SERVER_SIDE
    )
    outgoing_method = models.CharField(
        _("outgoing email"), max_length=20, choices=OutgoingMethod.choices, default=OutgoingMethod.SERVER_SIDE
    )
    act_method = models.CharField(
        _("appointments, contacts and tasks"), max_length=20, choices=ActMethod.choices, default=ActMethod.SERVER_SIDE
    )
    approval_status = models.CharField(
        _("email address approval"), max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.EMPTY
    )
    approval_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approval_changed_at = models.DateTimeField(null=True, blank=True)
    test_incoming = models.CharField(
        _("incoming test"), max_length=10, choices=TestStatus.choices, default=TestStatus.NOT_RUN
    )
    test_outgoing = models.CharField(
        _("outgoing test"), max_length=10, choices=TestStatus.choices, default=TestStatus.NOT_RUN
    )
    test_act = models.CharField(_("ACT test"), max_length=10, choices=TestStatus.choices, default=TestStatus.NOT_RUN)
    test_overall = models.CharField(
        _("test status"), max_length=10, choices=TestStatus.choices, default=TestStatus.NOT_RUN
    )
    tested_at = models.DateTimeField(_("tested"), null=True, blank=True)
    enabled_incoming = models.BooleanField(_("incoming enabled"), default=False)
    enabled_outgoing = models.BooleanField(_("outgoing enabled"), default=False)
    enabled_act = models.BooleanField(_("ACT enabled"), default=False)
    tracking_rule = models.CharField(
        _("track incoming email"), max_length=20, choices=TrackingRule.choices, default=TrackingRule.REPLIES
    )
    process_email_after = models.DateTimeField(
        _("process email received after"),
        null=True,
        blank=True,
        help_text=_("Overrides the server profile's date for this mailbox."),
    )
    # A forward mailbox (incoming method "Forward mailbox") may delete what it processed.
    delete_processed = models.BooleanField(
        _("delete messages after processing"),
        default=False,
        help_text=_("Forward mailboxes only: delete each forwarded message once it is tracked."),
    )
    username = models.CharField(_("user name"), max_length=254, blank=True)
    password = EncryptedTextField(_("password"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    consecutive_failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    next_sync_at = models.DateTimeField(_("next sync"), null=True, blank=True)
    disabled_reason = models.TextField(_("disabled because"), blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = MailboxQuerySet.as_manager()

    class Meta:
        ordering = ["address"]
        verbose_name = _("mailbox")
        verbose_name_plural = _("mailboxes")
        constraints = [
            models.UniqueConstraint(
                Lower("address"),
                condition=~models.Q(address=""),
                name="one_mailbox_per_address",
                violation_error_message=_("Another mailbox has this email address."),
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(owner_type=OwnerType.USER, user__isnull=False, queue_name="")
                    | models.Q(owner_type=OwnerType.QUEUE, user__isnull=True) & ~models.Q(queue_name="")
                ),
                name="mailbox_owned_by_user_or_queue",
                violation_error_message=_("A mailbox belongs to either a user or a queue."),
            ),
        ]
        indexes = [models.Index(fields=["approval_status"]), models.Index(fields=["test_overall"])]

    def __str__(self) -> str:
        return self.address or f"({self.owner_name})"

    def get_absolute_url(self) -> str:
        return reverse("mailbox-detail", args=[self.pk])

    def audit_organization(self) -> Organization:
        return self.organization

    @property
    def owner_name(self) -> str:
        if self.owner_type == OwnerType.QUEUE:
            return self.queue_name
        return self.user.get_full_name() or self.user.get_username() if self.user else ""

    @property
    def requires_approval(self) -> bool:
        org = self.organization
        if self.owner_type == OwnerType.QUEUE:
            return org.require_approval_queue_mailboxes
        return org.require_approval_user_mailboxes

    @property
    def password_stored(self) -> bool:
        """Whether the mailbox has a password of its own, without decrypting it."""
        return is_set(self, "password")

    @property
    def needs_own_credentials(self) -> bool:
        return bool(self.profile and self.profile.credentials_source == CredentialsSource.MAILBOX)

    def method(self, channel: str) -> str:
        return getattr(self, f"{channel}_method")

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.owner_type == OwnerType.USER and not self.user_id:
            errors["user"] = _("Choose the user who owns this mailbox.")
        if self.owner_type == OwnerType.QUEUE and not self.queue_name:
            errors["queue_name"] = _("Name the queue that owns this mailbox.")
        if self.address:
            self.address = self.address.strip().lower()
        if self.incoming_method == IncomingMethod.FORWARD_MAILBOX and self.outgoing_method != OutgoingMethod.NONE:
            errors["outgoing_method"] = _("A forward mailbox sends no email: choose None.")
        uses_server = [
            ch
            for ch in Channel.values
            if self.method(ch) in (IncomingMethod.SERVER_SIDE, IncomingMethod.FORWARD_MAILBOX)
        ]
        if uses_server and not self.profile_id:
            errors["profile"] = _("Server-side synchronization needs an email server profile.")
        if self.profile_id and self.act_method == ActMethod.SERVER_SIDE and not self.profile.carries_act:
            errors["act_method"] = _(
                "A POP3/IMAP profile carries email only: appointments, contacts and tasks cannot sync through it."
            )
        if self.profile_id and self.profile.organization_id != self.organization_id:
            errors["profile"] = _("Choose a server profile of the mailbox's organization.")
        if errors:
            raise ValidationError(errors)

    def prepare_approval(self) -> None:
        """Set the approval status an address change leads to (before saving)."""
        if not self.address:
            self.approval_status = ApprovalStatus.EMPTY
        elif self.requires_approval:
            self.approval_status = ApprovalStatus.PENDING
        else:
            self.approval_status = ApprovalStatus.APPROVED

    @property
    def address_changed(self) -> bool:
        loaded = getattr(self, "_audit_loaded", {})
        return self._state.adding or loaded.get("address") != self.address

    def save_from_form(self, actor: Actor) -> None:
        """Save an admin's edit.

        1. A changed address goes back to approval.
        2. A changed address, profile or credentials sets the tests back to Not run and
           disables the channels: what passed was tested against the old settings.
        """
        if self.address_changed:
            self.prepare_approval()
            self.approval_changed_by = None
            self.approval_changed_at = None
        if not self._state.adding and self.connection_changed:
            self.reset_tests()
        self.save_audited(actor)

    @property
    def connection_changed(self) -> bool:
        loaded = getattr(self, "_audit_loaded", {})
        # __dict__, not getattr: the password is compared as stored, without decrypting it.
        return any(loaded.get(name) != self.__dict__.get(attname) for name, attname in MAILBOX_CONNECTION_FIELDS)

    def reset_tests(self) -> list[str]:
        """Set every channel's test back to Not run and disable it (unsaved); returns the fields to save."""
        for channel in Channel.values:
            setattr(self, f"test_{channel}", TestStatus.NOT_RUN)
            setattr(self, f"enabled_{channel}", False)
        self.test_overall = TestStatus.NOT_RUN
        self.tested_at = None
        return [
            *(f"test_{channel}" for channel in Channel.values),
            *(f"enabled_{channel}" for channel in Channel.values),
            "test_overall",
            "tested_at",
            "updated",
        ]

    def _set_approval(self, actor: Actor, status: str, action: str, reason: str = "") -> None:
        """Set the approval status, who and when; one audit event, with the reason if one was given.

        A mailbox without address (a remap released it since the page was loaded) is refused.
        """
        if not self.address:
            raise ValidationError(_("This mailbox has no email address to approve or reject."))
        self.approval_status = status
        self.approval_changed_by = actor.user if actor.user and actor.user.is_authenticated else None
        self.approval_changed_at = timezone.now()
        self.save_audited(
            actor,
            action,
            update_fields=["approval_status", "approval_changed_by", "approval_changed_at", "updated"],
            extra_changes={"reason": ["", reason]} if reason else None,
        )

    def approve(self, actor: Actor) -> None:
        self._set_approval(actor, ApprovalStatus.APPROVED, "mailbox.approved")

    def reject(self, actor: Actor, reason: str = "") -> None:
        """Reject the address; the reason, if any, is recorded in the ``mailbox.rejected`` event."""
        self._set_approval(actor, ApprovalStatus.REJECTED, "mailbox.rejected", reason)

    def release_address(self, actor: Actor) -> None:
        """Break this mailbox's link to its address, for a remap to another mailbox."""
        self.address = ""
        self.approval_status = ApprovalStatus.EMPTY
        self.enabled_incoming = self.enabled_outgoing = self.enabled_act = False
        self.save_audited(actor, "mailbox.address_released")

    def profile_problems(self, profile: EmailServerProfile) -> list[str]:
        """Why this mailbox cannot move to a profile: the rules of ``clean``, and its own
        credentials if the profile needs them. Empty if it can."""
        probe = copy.copy(self)  # clean() normalises fields: check a copy, keep this one unchanged
        probe.profile = profile
        try:
            probe.clean()
        except ValidationError as error:
            problems = [str(message) for message in error.messages]
        else:
            problems = []
        if profile.credentials_source == CredentialsSource.MAILBOX and not (self.username and self.password_stored):
            problems.append(gettext("The profile uses each mailbox's own credentials, and this mailbox has none."))
        return problems

    @classmethod
    def change_profile(cls, mailboxes: Iterable[Mailbox], profile: EmailServerProfile, actor: Actor) -> list[Mailbox]:
        """Move mailboxes to a profile: all of them, or none; returns those that moved.

        1. Mailboxes on that profile already are left alone.
        2. Check every other one against the new profile: any problem refuses the whole
           change (a ValidationError with one message per mailbox).
        3. Save each as an admin's edit does (``save_from_form``): the changed profile sets its
           tests back to Not run and disables its channels, one audit event per mailbox.
        """
        moving = [mailbox for mailbox in mailboxes if mailbox.profile_id != profile.pk]
        problems = [
            gettext("%(mailbox)s: %(problem)s") % {"mailbox": mailbox, "problem": " ".join(found)}
            for mailbox in moving
            if (found := mailbox.profile_problems(profile))
        ]
        if problems:
            raise ValidationError(problems)
        with transaction.atomic():
            for mailbox in moving:
                mailbox.profile = profile
                mailbox.save_from_form(actor)
        return moving

    def address_ok(self) -> bool:
        if not self.address:
            return False
        return self.approval_status == ApprovalStatus.APPROVED or not self.requires_approval

    def in_sync_organization(self) -> bool:
        """A user's mailbox exchanges data with one organization only: the user's synchronizing
        one (DOMAIN.md, the one-of rules). A queue's mailbox belongs to its organization alone."""
        if self.owner_type != OwnerType.USER:
            return True
        return Membership.objects.filter(
            user_id=self.user_id, organization_id=self.organization_id, is_sync_organization=True
        ).exists()

    def email_received_after(self) -> Any:
        """The "process email received after" mark of the mailbox's incoming email: its own, else
        its server profile's; None when every message counts."""
        return self.process_email_after or (self.profile.process_email_after if self.profile else None)

    def email_owner(self) -> Any:
        """Who owns the CRM emails that arrive through this mailbox: its user; for a queue, the
        organization's first administrator (the earliest to join the portal); None if it has none."""
        if self.user_id is not None:
            return self.user
        membership = (
            Membership.objects.filter(organization_id=self.organization_id, role=Role.ADMINISTRATOR)
            .select_related("user")
            .order_by("user__date_joined", "user_id")
            .first()
        )
        return membership.user if membership else None

    def can_sync(self, channel: str) -> bool:
        """The gate of DOMAIN.md: nothing syncs until every condition holds."""
        return (
            self.is_active
            and self.in_sync_organization()
            and self.profile_id is not None
            and self.method(channel) != IncomingMethod.NONE
            and self.address_ok()
            and getattr(self, f"test_{channel}") == TestStatus.SUCCESS
            and getattr(self, f"enabled_{channel}")
        )

    def channel_rows(self) -> list[dict[str, Any]]:
        """Per-channel status for the detail page."""
        rows = []
        for channel in Channel:
            rows.append(
                {
                    "label": channel.label,
                    "method": getattr(self, f"get_{channel.value}_method_display")(),
                    "test": getattr(self, f"get_test_{channel.value}_display")(),
                    "test_value": getattr(self, f"test_{channel.value}"),
                    "enabled": getattr(self, f"enabled_{channel.value}"),
                    "can_sync": self.can_sync(channel.value),
                }
            )
        return rows


def find_mapped(address: str, exclude: Mailbox | None = None) -> Mailbox | None:
    """The mailbox an address is mapped to now (case-insensitive), if any."""
    qs = Mailbox.objects.select_related("user", "organization").filter(address__iexact=address.strip())
    if exclude is not None and exclude.pk:
        qs = qs.exclude(pk=exclude.pk)
    return qs.first()
