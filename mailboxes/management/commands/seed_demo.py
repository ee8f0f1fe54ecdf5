"""Create the demo organization, its people, a server profile and mailboxes."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from audit.log import Actor
from mailboxes.models import ApprovalStatus, EmailServerProfile, Mailbox, Membership, Organization, ProfileKind, Role

DOMAIN = "demo.example"
SERVICE_ACCOUNT = f"sync-service@{DOMAIN}"
PEOPLE = [
    ("admin", Role.ADMINISTRATOR, "Ada", "Admin"),
    ("approver", Role.APPROVER, "Per", "Approver"),
    ("auditor", Role.AUDITOR, "Aud", "Itor"),
    ("alice", Role.USER, "Alice", "Andersen"),
    ("bob", Role.USER, "Bob", "Berg"),
]


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo organization with an administrator, an approver, an auditor, two users, "
        "a server profile pointing at the EWS simulator and three mailboxes. Prints the sign-in. Safe to run again: "
        "existing demo objects are kept, and the people get a new password."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--ews-url",
            default="http://127.0.0.1:8765/EWS/Exchange.asmx",
            help="EWS endpoint of the simulator (default: %(default)s).",
        )
        parser.add_argument("--password", help="Password for the demo people (default: a new random one).")

    def handle(self, *args: Any, ews_url: str, password: str | None, **options: Any) -> None:
        password = password or secrets.token_urlsafe(12)
        actor = Actor.system("seed_demo")
        with transaction.atomic():
            org = self._organization(actor)
            users = {
                name: self._person(actor, org, name, role, first, last, password) for name, role, first, last in PEOPLE
            }
            profile = self._profile(actor, org, ews_url)
            self._mailboxes(actor, org, profile, users)
        self._seed_simulator(ews_url, profile.password)
        self.stdout.write(
            self.style.SUCCESS(f"Demo sign-in: user name “admin”, password “{password}”")
            + "\n(also: approver, auditor, alice, bob — same password)"
        )

    def _organization(self, actor: Actor) -> Organization:
        org = Organization.objects.filter(name="Demo Organization").first()
        if org is None:
            org = Organization(name="Demo Organization")
            org.save_audited(actor)
        return org

    def _person(
        self, actor: Actor, org: Organization, name: str, role: str, first: str, last: str, password: str
    ) -> Any:
        User = get_user_model()
        user, _ = User.objects.get_or_create(
            username=name, defaults={"first_name": first, "last_name": last, "email": f"{name}@{DOMAIN}"}
        )
        user.set_password(password)
        if role == Role.ADMINISTRATOR:
            user.is_staff = user.is_superuser = True
        user.save()
        if not Membership.objects.filter(user=user, organization=org).exists():
            Membership.add(actor, user, org, role)
        return user

    def _profile(self, actor: Actor, org: Organization, ews_url: str) -> EmailServerProfile:
        profile = EmailServerProfile.objects.filter(organization=org, name="Demo Exchange (simulator)").first()
        if profile is None:
            # Only a new profile becomes the default: on a later run, an admin may have made
            # another one the default (and the organization has one default at most).
            profile = EmailServerProfile(
                organization=org,
                name="Demo Exchange (simulator)",
                kind=ProfileKind.EXCHANGE_ONPREM,
                is_default=not EmailServerProfile.objects.filter(organization=org, is_default=True).exists(),
            )
        profile.ews_url = ews_url
        profile.username = SERVICE_ACCOUNT
        # Kept across runs: the simulator may hold the service account already.
        profile.password = profile.password or secrets.token_urlsafe(16)
        profile.save_audited(actor)
        return profile

    def _mailboxes(self, actor: Actor, org: Organization, profile: EmailServerProfile, users: dict[str, Any]) -> None:
        for user, status in ((users["alice"], ApprovalStatus.APPROVED), (users["bob"], ApprovalStatus.PENDING)):
            if not Mailbox.objects.filter(user=user).exists():
                mailbox = Mailbox(organization=org, user=user, address=user.email, profile=profile)
                mailbox.prepare_approval()
                mailbox.save_audited(actor)
                if status == ApprovalStatus.APPROVED:
                    mailbox.approve(actor)
        if not Mailbox.objects.filter(address=f"support@{DOMAIN}").exists():
            queue = Mailbox(
                organization=org,
                owner_type="queue",
                queue_name="Support",
                address=f"support@{DOMAIN}",
                profile=profile,
                act_method="none",
            )
            queue.prepare_approval()
            queue.save_audited(actor)

    def _seed_simulator(self, ews_url: str, service_password: str) -> None:
        """Create the demo mailboxes in the simulator, if one answers at ews_url."""
        parts = urlsplit(ews_url)
        control = f"{parts.scheme}://{parts.netloc}/_ewsim/mailboxes"
        accounts = [(SERVICE_ACCOUNT, service_password, True)] + [
            (f"{name}@{DOMAIN}", secrets.token_urlsafe(16), False) for name in ("alice", "bob", "support")
        ]
        for address, pw, impersonate in accounts:
            body = json.dumps({"address": address, "password": pw, "can_impersonate": impersonate}).encode()
            request = urllib.request.Request(control, data=body, headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=5).close()
            except urllib.error.HTTPError as error:
                if error.code != 409:  # 409: it exists already
                    self.stderr.write(f"EWS simulator refused {address}: HTTP {error.code}")
            except OSError:
                self.stderr.write(f"No EWS simulator answers at {control}; demo mailboxes were not created there.")
                return
