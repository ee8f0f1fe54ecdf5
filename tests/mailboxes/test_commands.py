"""Management commands: the demo data, and help text for every command of ours."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command, get_commands, load_command_class

from audit.log import Actor
from audit.models import AuditEvent
from crmsync_portal.management.commands.runportal import free_port
from mailboxes.models import ApprovalStatus, EmailServerProfile, Mailbox, Membership, Organization, Role
from tests.conftest import make_profile

SIGN_IN = re.compile(r"Demo sign-in: user name “admin”, password “([^”]+)”")


def seed_demo() -> tuple[str, str, str]:
    """Run seed_demo against an address where no simulator answers; (stdout, stderr, password)."""
    out, err = StringIO(), StringIO()
    ews_url = f"http://127.0.0.1:{free_port()}/EWS/Exchange.asmx"
    call_command("seed_demo", "--ews-url", ews_url, stdout=out, stderr=err)
    match = SIGN_IN.search(out.getvalue())
    assert match, out.getvalue()
    return out.getvalue(), err.getvalue(), match.group(1)


def counts() -> dict[str, int]:
    return {
        "organizations": Organization.objects.count(),
        "users": get_user_model().objects.count(),
        "memberships": Membership.objects.count(),
        "profiles": EmailServerProfile.objects.count(),
        "mailboxes": Mailbox.objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_creates_the_demo_organization(settings: Any) -> None:
    out, err, password = seed_demo()

    org = Organization.objects.get(name="Demo Organization")
    roles = dict(Membership.objects.filter(organization=org).values_list("user__username", "role"))
    assert roles == {
        "admin": Role.ADMINISTRATOR,
        "approver": Role.APPROVER,
        "auditor": Role.AUDITOR,
        "alice": Role.USER,
        "bob": Role.USER,
    }
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert not get_user_model().objects.get(username="alice").is_staff

    profile = EmailServerProfile.objects.get(organization=org)
    assert profile.is_default
    profile.full_clean()

    statuses = {(m.owner_name, m.address): m.approval_status for m in Mailbox.objects.filter(organization=org)}
    assert statuses == {
        ("Alice Andersen", "alice@demo.example"): ApprovalStatus.APPROVED,
        ("Bob Berg", "bob@demo.example"): ApprovalStatus.PENDING,
        ("Support", "support@demo.example"): ApprovalStatus.PENDING,
    }
    assert all(m.profile == profile for m in Mailbox.objects.all())
    assert AuditEvent.objects.filter(organization_id=org.pk, action="mailbox.approved").count() == 1

    assert authenticate(username="admin", password=password) == admin
    assert authenticate(username="alice", password=password) is not None
    # No simulator answered: said on stderr, and the command still succeeded.
    assert "No EWS simulator answers at" in err


@pytest.mark.django_db
def test_seed_demo_twice_creates_no_duplicates() -> None:
    _, _, first_password = seed_demo()
    first = counts()
    profile_password = EmailServerProfile.objects.get().password

    _, _, second_password = seed_demo()

    assert counts() == first == {"organizations": 1, "users": 5, "memberships": 5, "profiles": 1, "mailboxes": 3}
    assert authenticate(username="admin", password=second_password) is not None
    assert authenticate(username="admin", password=first_password) is None  # the people got a new password
    # The service account's password is kept: the simulator may hold it already.
    assert EmailServerProfile.objects.get().password == profile_password


@pytest.mark.django_db
def test_seed_demo_again_keeps_the_default_profile_chosen_since() -> None:
    seed_demo()
    org = Organization.objects.get(name="Demo Organization")
    chosen = make_profile(org, "Chosen by the admin")
    chosen.make_default(Actor.system())

    seed_demo()

    assert list(EmailServerProfile.objects.filter(organization=org, is_default=True)) == [chosen]


@pytest.mark.django_db
def test_seed_demo_takes_a_given_password() -> None:
    out = StringIO()
    call_command(
        "seed_demo",
        "--password",
        "demo-pass-123",
        "--ews-url",
        f"http://127.0.0.1:{free_port()}/EWS/Exchange.asmx",
        stdout=out,
        stderr=StringIO(),
    )
    assert "“demo-pass-123”" in out.getvalue()
    assert authenticate(username="bob", password="demo-pass-123") is not None


def our_commands() -> dict[str, str]:
    """{command: app} for the commands of the project's own apps (not Django's or libraries')."""
    ours = {
        app.name
        for app in apps.get_app_configs()
        # A checkout's .venv lies inside BASE_DIR too.
        if Path(app.path).is_relative_to(settings.BASE_DIR) and "site-packages" not in Path(app.path).parts
    }
    return {name: app for name, app in get_commands().items() if app in ours}


def test_the_project_has_its_commands() -> None:
    assert {"seed_demo", "rotate_keys", "runportal"} <= set(our_commands())


@pytest.mark.parametrize("name", sorted(our_commands()))
def test_every_command_of_ours_has_help_text(name: str) -> None:
    command = load_command_class(our_commands()[name], name)
    assert command.help.strip()
    usage = command.create_parser("manage.py", name).format_help()
    assert " ".join(command.help.split()[:4]) in " ".join(usage.split())
