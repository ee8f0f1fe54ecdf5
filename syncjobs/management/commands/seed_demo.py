"""Create the demo organization, its people, a server profile, mailboxes and CRM records.

With the EWS simulator answering, the demo mailboxes are created there too, and alice's
mailbox passes a real Test & Enable, so the scheduler syncs her records at once. Her incoming
email is tracked ("from CRM leads, contacts and accounts"): a message from a demo contact waits
in her Inbox. The Support queue's mailbox, once approved and tested, turns its mail into queue items.
"""

from __future__ import annotations

import json
import random
import secrets
import urllib.error
import urllib.request
from datetime import timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from audit.log import Actor
from crm.models import Account, Appointment, Contact, Lead, Task
from crmsync_portal.lib.env import envbool
from mailboxes.models import (
    ApprovalStatus,
    EmailServerProfile,
    Mailbox,
    Membership,
    Organization,
    ProfileKind,
    Role,
    TrackingRule,
)
from syncjobs.models import TestRun
from syncjobs.testenable import run_test

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
        "a server profile pointing at the EWS simulator, three mailboxes and demo CRM records (contacts, accounts, "
        "leads, appointments, tasks). When the simulator answers, its demo mailboxes are created and alice's mailbox "
        "runs Test & Enable, so it syncs at once; her email from CRM contacts, leads and accounts is tracked, and a "
        "message from a demo contact waits in her Inbox. Prints the sign-in. Safe to run again: existing demo "
        "objects are kept, and the people get a new password."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--ews-url",
            default="http://127.0.0.1:8765/EWS/Exchange.asmx",
            help="EWS endpoint of the simulator (default: %(default)s).",
        )
        parser.add_argument("--password", help="Password for the demo people (default: a new random one).")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off. It makes the user named admin a superuser and resets the passwords "
            "of admin, approver, auditor, alice and bob: never on a database with real people.",
        )

    def handle(self, *args: Any, ews_url: str, password: str | None, force: bool = False, **options: Any) -> None:
        # The configured DEBUG, as settings read it: test runners turn settings.DEBUG off.
        if not envbool("DEBUG", False) and not force:
            raise CommandError(
                "seed_demo refuses to run with DEBUG off: it makes the user named admin a superuser and resets "
                "the passwords of admin, approver, auditor, alice and bob. For a demo, set DEBUG=true; to run it "
                "on this database anyway, add --force."
            )
        password = password or secrets.token_urlsafe(12)
        actor = Actor.system("seed_demo")
        with transaction.atomic():
            org = self._organization(actor)
            users = {
                name: self._person(actor, org, name, role, first, last, password) for name, role, first, last in PEOPLE
            }
            profile = self._profile(actor, org, ews_url)
            self._mailboxes(actor, org, profile, users)
            self._records(org, users)
        first_contact = Contact.objects.filter(organization=org, owner=users["alice"]).order_by("created_at").first()
        if self._seed_simulator(ews_url, profile.password, first_contact):
            self._test_and_enable(users["alice"].mailbox)
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
        profile.polling_interval_minutes = 1
        # Kept across runs: the simulator may hold the service account already.
        profile.password = profile.password or secrets.token_urlsafe(16)
        profile.save_audited(actor)
        return profile

    def _mailboxes(self, actor: Actor, org: Organization, profile: EmailServerProfile, users: dict[str, Any]) -> None:
        for user, status in ((users["alice"], ApprovalStatus.APPROVED), (users["bob"], ApprovalStatus.PENDING)):
            if not Mailbox.objects.filter(user=user).exists():
                mailbox = Mailbox(
                    organization=org,
                    user=user,
                    address=user.email,
                    profile=profile,
                    tracking_rule=TrackingRule.FROM_CRM_RECORDS,
                )
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
                tracking_rule=TrackingRule.ALL,
            )
            queue.prepare_approval()
            queue.save_audited(actor)

    def _records(self, org: Organization, users: dict[str, Any]) -> None:
        """A few dozen records for alice (and some for bob), once."""
        alice, bob = users["alice"], users["bob"]
        if Contact.all_objects.filter(organization=org, owner=alice).exists():
            return
        rng = random.Random(7)  # the same demo every time
        firsts = [
            "Emma",
            "Noah",
            "Ida",
            "Oscar",
            "Freja",
            "William",
            "Clara",
            "Karl",
            "Alma",
            "Lucas",
            "Sofie",
            "Viktor",
        ]
        lasts = ["Hansen", "Nielsen", "Jensen", "Pedersen", "Larsen", "Olsen", "Poulsen", "Madsen", "Kristensen"]
        accounts = [
            Account.objects.create(organization=org, owner=alice, name=name, email=f"info@{slug}.example")
            for name, slug in (
                ("Nordic Foods", "nordicfoods"),
                ("Harbour Logistics", "harbour"),
                ("Kilo Design", "kilo"),
            )
        ]
        contacts = []
        for i in range(18):
            first, last = rng.choice(firsts), rng.choice(lasts)
            contacts.append(
                Contact.objects.create(
                    organization=org,
                    owner=alice if i < 15 else bob,
                    first_name=first,
                    last_name=last,
                    email=f"{first}.{last}{i}@example.org".lower(),
                    job_title=rng.choice(["Buyer", "CFO", "Head of Sales", "Project Manager", "Engineer"]),
                    business_phone=f"+45 70 {10 + i:02d} {20 + i:02d} 00",
                    account=accounts[i % len(accounts)],
                    is_active=i != 14,
                )
            )
        for i in range(4):
            Lead.objects.create(
                organization=org,
                owner=alice,
                first_name=rng.choice(firsts),
                last_name=rng.choice(lasts),
                company_name=f"Prospect {i + 1}",
                email=f"lead{i + 1}@prospect.example",
            )
        today = timezone.localtime().replace(hour=9, minute=0, second=0, microsecond=0)
        for i, days in enumerate((-20, -3, 0, 1, 2, 4, 7, 9, 14, 21)):
            start = today + timedelta(days=days, hours=i % 4)
            contact = contacts[i]
            Appointment.objects.create(
                organization=org,
                owner=alice,
                subject=f"Meeting with {contact}",
                start=start,
                end=start + timedelta(minutes=45),
                location=rng.choice(["Office", "Teams", "On site"]),
                attendees=[contact.email],
                regarding_contact=contact,
            )
        for i, days in enumerate((1, 2, 3, 5, 8, 10, 15, None)):
            Task.objects.create(
                organization=org,
                owner=alice,
                subject=f"Follow up: {contacts[i + 3]}",
                due=(today + timedelta(days=days)).date() if days is not None else None,
                priority=["normal", "high", "low"][i % 3],
                status="completed" if i == 7 else "open",
            )

    def _test_and_enable(self, mailbox: Mailbox) -> None:
        run_test(TestRun.objects.create(mailbox=mailbox).pk)
        mailbox.refresh_from_db()
        self.stdout.write(f"Test & Enable of {mailbox}: {mailbox.get_test_overall_display()}")

    def _seed_simulator(self, ews_url: str, service_password: str, contact: Contact | None) -> bool:
        """Create the demo mailboxes in the simulator; False when no simulator answers at ews_url."""
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
                continue
            except OSError:
                self.stderr.write(f"No EWS simulator answers at {control}; demo mailboxes were not created there.")
                return False
            if address.startswith("alice@"):
                self._seed_items(control, address)
                self._seed_inbox(control, address, contact)
        return True

    def _seed_items(self, control: str, address: str) -> None:
        """Items alice made in her mailbox: one tracked to the CRM, one private."""
        tomorrow = (timezone.now() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        for folder, item in (
            (
                "contacts",
                {
                    "given_name": "Tove",
                    "surname": "Tracked",
                    "email": "tove@customer.example",
                    "categories": ["Tracked to CRM"],
                },
            ),
            (
                "calendar",
                {
                    "subject": "Dentist (private)",
                    "start": tomorrow.isoformat(),
                    "end": (tomorrow + timedelta(hours=1)).isoformat(),
                },
            ),
        ):
            body = json.dumps(item).encode()
            url = f"{control}/{address}/folders/{folder}/items"
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=5).close()

    def _seed_inbox(self, control: str, address: str, contact: Contact | None) -> None:
        """Mail in alice's Inbox: one from a demo contact (tracked by her rule), one from a stranger (private)."""
        senders = [("Newsletter", "news@stranger.example", "Our weekly offers")]
        if contact is not None:
            senders.insert(0, (str(contact), contact.email, f"Question about our order, {contact.first_name} here"))
        for n, (name, sender, subject) in enumerate(senders):
            mime = (
                f"From: {name} <{sender}>\r\nTo: Alice Andersen <{address}>\r\nSubject: {subject}\r\n"
                f"Message-ID: <demo-{n}-{secrets.token_hex(4)}@demo.example>\r\n"
                f"Date: {format_datetime(timezone.now())}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                "Hello Alice,\r\n\r\nCould you call me back this week?\r\n"
            ).encode()
            url = f"{control}/{address}/folders/inbox/mime"
            request = urllib.request.Request(url, data=mime, headers={"Content-Type": "message/rfc822"})
            urllib.request.urlopen(request, timeout=5).close()
