"""Every URL × every persona: who gets what (STYLE.md 10).

A new URL must be added to EXPECTED: test_every_url_is_in_the_table fails otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from audit.log import Actor
from audit.models import AuditEvent
from clients.models import ClientConflict, ClientInstance
from crm.models import Email, QueueItem, SyncFilter, TrackedFolder
from crm.views import KINDS
from mailboxes.models import ApprovalStatus, EmailServerProfile, Mailbox, Organization
from monitoring.models import Alert
from syncjobs.models import Conflict, ErrorKind, ItemLink, LinkState, RunStatus, SyncRun
from tests.conftest import client_for, make_mailbox, make_profile, make_user
from tests.crm.test_views import make_record

pytestmark = pytest.mark.django_db

LOGIN = "302 to /login/"
STAFF = "302 to the admin login"  # staff only
OK, MOVED, DENY, HIDE, NOGET = 200, 302, 403, 404, 405
# MOVED: allowed, redirected on. DENY: the role may not. HIDE: an object of another organization.

# The admin comes last: its POSTs change things (the deletes use spare objects).
PERSONAS = ("anonymous", "approver", "auditor", "alice", "charlie", "outsider", "staff", "admin")

# fmt: off
EXPECTED: dict[tuple[str, str], tuple[Any, ...]] = {
    #                                anon   apprv  audit  alice  charl  outsd  staff  admin
    ("home", "GET"):                 (LOGIN, MOVED, MOVED, OK,    OK,    MOVED, OK,    MOVED),
    ("login", "GET"):                (OK,    MOVED, MOVED, MOVED, MOVED, MOVED, MOVED, MOVED),
    ("favicon", "GET"):              (301,   301,   301,   301,   301,   301,   301,   301),
    ("logout", "GET"):               (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("logout", "POST"):              (MOVED, MOVED, MOVED, MOVED, MOVED, MOVED, MOVED, MOVED),
    # Django's set_language, for the language chooser: back to the page (here "/"), for everyone.
    ("i18n", "POST"):                (MOVED, MOVED, MOVED, MOVED, MOVED, MOVED, MOVED, MOVED),
    ("audit-log", "GET"):            (LOGIN, DENY,  OK,    DENY,  DENY,  OK,    DENY,  OK),
    ("audit-log", "POST"):           (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),  # read only
    # An Acme event; alice's mailbox's history (empty for Globex's admin); the export as CSV.
    ("audit-event", "GET"):          (LOGIN, DENY,  OK,    DENY,  DENY,  HIDE,  DENY,  OK),
    ("audit-object", "GET"):         (LOGIN, DENY,  OK,    DENY,  DENY,  OK,    DENY,  OK),
    ("audit-export", "GET"):         (LOGIN, DENY,  OK,    DENY,  DENY,  OK,    DENY,  OK),
    ("audit-export", "POST"):        (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("dashboard", "GET"):            (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("profile-list", "GET"):         (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("profile-create", "GET"):       (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("profile-create", "POST"):      (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("profile-detail", "GET"):       (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("profile-detail", "POST"):      (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),  # read only
    ("profile-edit", "GET"):         (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("profile-edit", "POST"):        (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("profile-delete", "GET"):       (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("profile-delete", "POST"):      (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("mailbox-list", "GET"):         (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("mailbox-create", "GET"):       (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("mailbox-create", "POST"):      (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    # Without a selection the GET goes back to the list; the POST (no profile chosen) on to the confirmation.
    ("mailboxes-change-profile", "GET"):  (LOGIN, DENY, DENY, DENY, DENY, MOVED, DENY, MOVED),
    ("mailboxes-change-profile", "POST"): (LOGIN, DENY, DENY, DENY, DENY, HIDE,  DENY, MOVED),
    ("mailbox-detail", "GET"):       (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("mailbox-edit", "GET"):         (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("mailbox-edit", "POST"):        (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("mailbox-delete", "GET"):       (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("mailbox-delete", "POST"):      (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("mailbox-approve", "GET"):      (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("mailbox-approve", "POST"):     (LOGIN, MOVED, DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("mailbox-reject", "GET"):       (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("mailbox-reject", "POST"):      (LOGIN, MOVED, DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("mailbox-reject-confirm", "GET"): (LOGIN, OK,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("approvals", "GET"):            (LOGIN, OK,    DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("approvals-approve", "GET"):    (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("approvals-approve", "POST"):   (LOGIN, MOVED, DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("approvals-reject", "GET"):     (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("approvals-reject", "POST"):    (LOGIN, MOVED, DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("approvals-reject-confirm", "GET"): (LOGIN, MOVED, DENY, DENY, DENY, MOVED, DENY, MOVED),  # nothing selected
    ("mailbox-status", "GET"):       (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  OK),
    ("mailbox-test", "GET"):         (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("mailbox-test", "POST"):        (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("mailbox-sync", "GET"):         (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("mailbox-sync", "POST"):        (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("mailboxes-test", "GET"):       (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("mailboxes-test", "POST"):      (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("profile-test", "GET"):         (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("profile-test", "POST"):        (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("run-confirm-deletes", "GET"):  (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("run-confirm-deletes", "POST"): (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("link-release", "GET"):         (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("link-release", "POST"):        (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    ("conflict-apply-other", "GET"): (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("conflict-apply-other", "POST"): (LOGIN, DENY, DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
    # Client instances: everyone sees their own; the change-request queue is for approvers and admins.
    ("client-list", "GET"):          (LOGIN, OK,    OK,    OK,    OK,    OK,    OK,    OK),
    ("client-revoke", "GET"):        (LOGIN, HIDE,  HIDE,  OK,    HIDE,  HIDE,  HIDE,  HIDE),
    ("client-revoke", "POST"):       (LOGIN, HIDE,  HIDE,  MOVED, HIDE,  HIDE,  HIDE,  HIDE),
    ("client-requests", "GET"):      (LOGIN, OK,    DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("client-request-approve", "GET"):  (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-request-approve", "POST"): (LOGIN, MOVED, DENY, DENY, DENY, HIDE, DENY, MOVED),
    ("client-request-reject", "GET"):   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-request-reject", "POST"):  (LOGIN, MOVED, DENY, DENY, DENY, HIDE, DENY, MOVED),
    ("client-requests-approve", "GET"):  (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-requests-approve", "POST"): (LOGIN, MOVED, DENY, DENY, DENY, MOVED, DENY, MOVED),
    ("client-requests-reject", "GET"):   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("client-requests-reject", "POST"):  (LOGIN, MOVED, DENY, DENY, DENY, MOVED, DENY, MOVED),
    ("django-admin", "GET"):         (STAFF, STAFF, STAFF, STAFF, STAFF, STAFF, OK,    STAFF),
    ("django-rq", "GET"):            (STAFF, STAFF, STAFF, STAFF, STAFF, STAFF, OK,    STAFF),
    # Health checks, public (readyz: 503, no worker or scheduler runs here); metrics for staff or a token.
    ("healthz", "GET"):              (OK,    OK,    OK,    OK,    OK,    OK,    OK,    OK),
    ("healthz", "POST"):             (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("readyz", "GET"):               (503,   503,   503,   503,   503,   503,   503,   503),
    ("readyz", "POST"):              (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("metrics", "GET"):              (DENY,  DENY,  DENY,  DENY,  DENY,  DENY,  OK,    DENY),
    ("metrics", "POST"):             (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
}

# CRM records: the same rows for every record type. Alice owns the record the URLs point at; the
# deletes go to a spare record of bob's, which alice may not see.
CRM_KINDS = ("account", "contact", "lead", "appointment", "task")
for _kind in CRM_KINDS:
    EXPECTED.update({
        #                                anon   apprv  audit  alice  charl  outsd  staff  admin
        (f"{_kind}-list", "GET"):       (LOGIN, DENY,  DENY,  OK,    DENY,  OK,    DENY,  OK),
        (f"{_kind}-create", "GET"):     (LOGIN, DENY,  DENY,  OK,    DENY,  OK,    DENY,  OK),
        (f"{_kind}-create", "POST"):    (LOGIN, DENY,  DENY,  OK,    DENY,  OK,    DENY,  OK),
        (f"{_kind}-detail", "GET"):     (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
        (f"{_kind}-edit", "GET"):       (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
        (f"{_kind}-edit", "POST"):      (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
        (f"{_kind}-delete", "GET"):     (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
        (f"{_kind}-delete", "POST"):    (LOGIN, DENY,  DENY,  HIDE,  DENY,  HIDE,  DENY,  MOVED),
    })
# CRM emails and queues: alice owns the email the URLs point at (edit: her draft; the POSTs save
# it as a draft again); the admin and the outsider have no mailbox to compose with (the page says
# so). The queue is Acme's, its item an email of the admin's; a POST assigns it to nobody.
EXPECTED.update({
    #                                   anon   apprv  audit  alice  charl  outsd  staff  admin
    ("email-list", "GET"):             (LOGIN, DENY,  DENY,  OK,    DENY,  OK,    DENY,  OK),
    ("email-create", "GET"):           (LOGIN, DENY,  DENY,  OK,    DENY,  OK,    DENY,  OK),
    ("email-create", "POST"):          (LOGIN, DENY,  DENY,  MOVED, DENY,  OK,    DENY,  OK),
    ("email-detail", "GET"):           (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
    ("email-body", "GET"):             (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
    ("email-status", "GET"):           (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
    ("email-reply", "GET"):            (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
    ("email-reply", "POST"):           (LOGIN, DENY,  DENY,  MOVED, DENY,  HIDE,  DENY,  OK),
    ("email-edit", "GET"):             (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  DENY),
    ("email-edit", "POST"):            (LOGIN, DENY,  DENY,  MOVED, DENY,  HIDE,  DENY,  DENY),
    ("email-track", "GET"):            (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("email-track", "POST"):           (LOGIN, DENY,  DENY,  MOVED, DENY,  HIDE,  DENY,  MOVED),
    ("queue-list", "GET"):             (LOGIN, DENY,  DENY,  OK,    DENY,  OK,    DENY,  OK),
    ("queue-detail", "GET"):           (LOGIN, DENY,  DENY,  OK,    DENY,  HIDE,  DENY,  OK),
    ("queue-item-assign", "GET"):      (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("queue-item-assign", "POST"):     (LOGIN, DENY,  DENY,  MOVED, DENY,  HIDE,  DENY,  MOVED),
    ("queue-item-done", "GET"):        (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("queue-item-done", "POST"):       (LOGIN, DENY,  DENY,  MOVED, DENY,  HIDE,  DENY,  MOVED),
})
# Self-service: every member's own pages (charlie has no membership); the filter templates are
# for administrators. The filter and conflict the URLs point at are alice's. Setting up a mailbox
# is for those without one (alice has hers: back to it).
EXPECTED.update({
    #                                         anon   apprv  audit  alice  charl  outsd  staff  admin
    ("my-mailbox", "GET"):                    (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-mailbox", "POST"):                   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-mailbox-setup", "GET"):              (LOGIN, OK   , OK   , MOVED, DENY , OK   , DENY , OK   ),
    ("my-mailbox-setup", "POST"):             (LOGIN, OK   , OK   , MOVED, DENY , OK   , DENY , OK   ),
    ("my-mailbox-edit", "GET"):               (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-mailbox-edit", "POST"):              (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-mailbox-status", "GET"):             (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-mailbox-status", "POST"):            (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-folders", "GET"):                    (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-folders", "POST"):                   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-folder-add", "GET"):                 (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-folder-add", "POST"):                (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-folder-remove", "GET"):              (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-folder-remove", "POST"):             (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-filters", "GET"):                    (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-filters", "POST"):                   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-filter-create", "GET"):              (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-filter-create", "POST"):             (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-settings", "GET"):                   (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-settings", "POST"):                  (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-conflicts", "GET"):                  (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-conflicts", "POST"):                 (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-mailbox-test", "GET"):               (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-mailbox-test", "POST"):              (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-filter-preview", "GET"):             (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-filter-preview", "POST"):            (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-tracking-rule", "GET"):              (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-tracking-rule", "POST"):             (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-sync-organization", "GET"):          (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-sync-organization", "POST"):         (LOGIN, OK   , OK   , OK   , DENY , OK   , DENY , OK),
    ("my-filter-edit", "GET"):                (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-filter-edit", "POST"):               (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-filter-activate", "GET"):            (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-filter-activate", "POST"):           (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-filter-deactivate", "GET"):          (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-filter-deactivate", "POST"):         (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-filter-delete", "GET"):              (LOGIN, HIDE , HIDE , OK   , DENY , HIDE , DENY , HIDE),
    ("my-filter-delete", "POST"):             (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-conflict-keep-crm", "GET"):          (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-conflict-keep-crm", "POST"):         (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-conflict-take-mailbox", "GET"):      (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-conflict-take-mailbox", "POST"):     (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-client-conflict-keep-crm", "GET"):   (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-client-conflict-keep-crm", "POST"):  (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-client-conflict-take-client", "GET"):  (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-client-conflict-take-client", "POST"): (LOGIN, HIDE , HIDE , MOVED, DENY , HIDE , DENY , HIDE),
    ("my-filter-templates", "GET"):           (LOGIN, DENY , DENY , DENY , DENY , OK   , DENY , OK),
    ("my-filter-templates", "POST"):          (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("my-filter-template-create", "GET"):     (LOGIN, DENY , DENY , DENY , DENY , OK   , DENY , OK),
    ("my-filter-template-create", "POST"):    (LOGIN, DENY , DENY , DENY , DENY , OK   , DENY , OK),
    ("my-filter-templates-reset", "GET"):     (LOGIN, DENY , DENY , DENY , DENY , MOVED, DENY , MOVED),
    ("my-filter-templates-reset", "POST"):    (LOGIN, DENY , DENY , DENY , DENY , MOVED, DENY , MOVED),
})
# Sync monitoring and alerts: the administrators of each organization (the alert is about alice's mailbox).
EXPECTED.update({
    #                                   anon   apprv  audit  alice  charl  outsd  staff  admin
    ("monitoring", "GET"):             (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("monitoring", "POST"):            (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("monitoring-mailboxes", "GET"):   (LOGIN, DENY,  DENY,  DENY,  DENY,  OK,    DENY,  OK),
    ("monitoring-mailboxes", "POST"):  (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("alert-acknowledge", "GET"):      (NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET, NOGET),
    ("alert-acknowledge", "POST"):     (LOGIN, DENY,  DENY,  DENY,  DENY,  HIDE,  DENY,  MOVED),
})
# The client API answers a browser session with 401: it takes bearer tokens (and Basic to register).
for _name in ("api-instances", "api-instance-me", "api-instance-promote", "api-changes", "api-offline"):
    EXPECTED.update({(_name, "GET"): (401,) * 8, (_name, "POST"): (401,) * 8})
EXPECTED.update({("api-schema", "GET"): (OK,) * 8, ("api-docs", "GET"): (OK,) * 8})
# fmt: on

# Included URL configurations outside the project, tested by their prefix only.
PREFIXES = {"django-admin": "/django-admin/", "django-rq": "/django-rq/", "i18n": "/i18n/setlang/"}


@pytest.fixture
def staff(db: Any) -> Any:
    """A Django superuser who is a member of no organization: the console is not theirs."""
    return make_user("staff", is_staff=True, is_superuser=True)


@pytest.fixture
def objects(
    org: Organization, profile: EmailServerProfile, alice_mailbox: Mailbox, alice: Any, bob: Any
) -> dict[str, Any]:
    """Acme's objects the URLs point at; the admin's deletes go to spare ones."""
    found: dict[Any, Any] = {
        "profile": profile,  # in use by alice's mailbox: the admin's delete is refused
        "mailbox": alice_mailbox,
        ("profile-delete", "POST"): make_profile(org, "Spare"),
        ("mailbox-delete", "POST"): make_mailbox(org, bob, "bob@example.com", profile),
    }
    for kind in CRM_KINDS:
        found[kind] = make_record(kind, org, alice)
        found[(f"{kind}-delete", "POST")] = make_record(kind, org, bob)
    # Regarding a contact: its conversation can be tracked again and again.
    found["email"] = Email.objects.create(
        organization=org,
        owner=alice,
        subject="Hello",
        direction="incoming",
        status="received",
        message_id="<m@x>",
        regarding_contact=found["contact"],
    )
    draft = Email.objects.create(organization=org, owner=alice, subject="Draft", direction="outgoing")
    found[("email-edit", "GET")] = found[("email-edit", "POST")] = draft
    found["queue"] = make_mailbox(org, None, "support@example.com", profile, owner_type="queue", queue_name="Support")
    found["queue-item"] = QueueItem.objects.create(
        queue=found["queue"], email=Email.objects.create(organization=org, owner=bob, direction="incoming")
    )
    found["alert"] = Alert.objects.create(organization=org, kind="mass_delete_refused", mailbox=alice_mailbox)
    # The sync records of alice's mailbox: a run the mass-delete guard stopped, a quarantined
    # item, an open conflict about another contact of alice's (the admin's POST changes it).
    found["run"] = SyncRun.objects.create(
        mailbox=alice_mailbox, status=RunStatus.FAILED, error_kind=ErrorKind.GUARD, error="Would delete 40 of 50."
    )
    contact = make_record("contact", org, alice)
    found["link"] = ItemLink.objects.create(
        mailbox=alice_mailbox, record_type="contact", crm_id=contact.pk, exchange_id="AAA=", state=LinkState.QUARANTINED
    )
    found["conflict"] = Conflict.objects.create(
        mailbox=alice_mailbox,
        record_type="contact",
        crm_id=contact.pk,
        fields=["job_title"],
        crm_values={"job_title": "CRM title"},
        exchange_values={"job_title": "Mailbox title"},
        resolution={"job_title": "crm"},
    )
    # Alice's instances: the first synchronizes, the second asks to (approved by the approver's
    # POST; the admin's then finds it decided and is sent back to the queue).
    ClientInstance.register(Actor.system("tests"), alice, org, "Laptop", "LAPTOP-1", "9.1")
    desktop, _token = ClientInstance.register(Actor.system("tests"), alice, org, "Desktop", "DESKTOP-7", "9.1")
    found["client"] = desktop
    request = desktop.request_promotion(Actor.system("tests"), "New computer")
    found["client-request"] = request
    found["my-filter"] = SyncFilter.objects.filter(user=alice, organization=org).first()
    found["my-folder"] = TrackedFolder.objects.create(
        mailbox=alice_mailbox, folder_name="Acme", regarding_contact=found["contact"]
    )
    found["my-conflict"] = Conflict.objects.create(
        mailbox=alice_mailbox,
        record_type="contact",
        crm_id=contact.pk,
        fields=["job_title"],
        crm_values={"job_title": "CRM"},
        exchange_values={"job_title": "Mailbox"},
        resolution={"job_title": "crm"},
    )
    # An open conflict alice's client recorded (alice's keep-crm closes it; her take-client then
    # finds it closed and is sent back to the page).
    found["my-client-conflict"] = ClientConflict.objects.create(
        instance=desktop,
        user=alice,
        organization=org,
        record_type="contact",
        record_id=contact.pk,
        op_id="op-1",
        op="update",
        base={"version": 1},
        theirs={"version": 2, "deleted": False, "fields": {"job_title": "CRM"}},
        ours={"fields": {"job_title": "Client"}},
    )
    return found


def url_for(name: str, method: str, objects: dict[str, Any]) -> str:
    if name in PREFIXES:
        return PREFIXES[name]
    if name == "audit-event":
        return reverse(name, args=[AuditEvent.objects.filter(organization_id=objects["mailbox"].organization_id)[0].pk])
    if name == "audit-object":
        return reverse(name, args=["mailboxes.mailbox", objects["mailbox"].pk])
    if name == "audit-export":
        return reverse(name, args=["csv"])
    if name in ("my-filter-edit", "my-filter-activate", "my-filter-deactivate", "my-filter-delete"):
        return reverse(name, args=[objects["my-filter"].pk])
    if name == "my-folder-remove":
        return reverse(name, args=[objects["my-folder"].pk])
    if name.startswith("my-client-conflict-"):
        return reverse(name, args=[objects["my-client-conflict"].pk])
    if name.startswith("my-conflict-"):
        return reverse(name, args=[objects["my-conflict"].pk])
    if name == "alert-acknowledge":
        return reverse(name, args=[objects["alert"].pk])
    if name in ("client-request-approve", "client-request-reject"):
        return reverse(name, args=[objects["client-request"].pk])
    if name.startswith("queue-item-"):
        return reverse(name, args=[objects["queue-item"].pk])
    if name.startswith(
        ("profile-", "mailbox-", "run-", "link-", "conflict-", "client-revoke", "email-", "queue-", *CRM_KINDS)
    ) and not name.endswith(("-list", "-create")):
        obj = objects.get((name, method)) or objects[name.split("-")[0]]
        return reverse(name, args=[obj.pk])
    return reverse(name)


def outcome(response: Any) -> Any:
    if response.status_code == 302:
        if response.url.startswith("/login/?next="):
            return LOGIN
        if response.url.startswith("/django-admin/login/?next="):
            return STAFF
    return response.status_code


def test_every_url_and_persona(
    request: pytest.FixtureRequest, objects: dict[str, Any], other_mailbox: Mailbox, staff: Any, rq_queues: str
) -> None:
    users = {name: request.getfixturevalue(name) for name in PERSONAS if name != "anonymous"}
    post_data = {"mailbox": [str(objects["mailbox"].pk)]}
    failures = []
    for (name, method), row in EXPECTED.items():
        url = url_for(name, method, objects)
        for persona, expected in zip(PERSONAS, row, strict=True):
            client = client_for(users[persona]) if persona in users else Client()
            response = client.post(url, post_data) if method == "POST" else client.get(url)
            if outcome(response) != expected:
                failures.append(f"{method} {url} as {persona}: expected {expected}, got {outcome(response)}")
    assert failures == [], "\n".join(failures)

    # What the refused requests left alone, and what the admin's did.
    assert EmailServerProfile.objects.filter(pk=objects["profile"].pk).exists()
    assert not EmailServerProfile.objects.filter(pk=objects[("profile-delete", "POST")].pk).exists()
    assert not Mailbox.objects.filter(pk=objects[("mailbox-delete", "POST")].pk).exists()
    other_mailbox.refresh_from_db()
    assert other_mailbox.approval_status == ApprovalStatus.PENDING
    actors = set(AuditEvent.objects.filter(action__startswith="mailbox.").values_list("actor_name", flat=True))
    assert actors == {"approver", "admin", "alice"}  # alice: her own mailbox, through self-service
    for kind in CRM_KINDS:
        model = KINDS[kind].model
        assert model.objects.get(pk=objects[kind].pk).version == 1
        assert model.all_objects.get(pk=objects[(f"{kind}-delete", "POST")].pk).is_deleted
    objects["link"].refresh_from_db()
    assert objects["link"].state == LinkState.ERROR  # released: retried on the next run
    objects["conflict"].refresh_from_db()
    assert (objects["conflict"].status, objects["conflict"].resolved_by) == ("closed", "Admin")
    assert Alert.objects.get(pk=objects["alert"].pk).acknowledged_by.username == "admin"


def _project_module(urlconf: Any) -> bool:
    path = Path(getattr(urlconf, "__file__", "") or "")
    return settings.BASE_DIR in path.parents and ".venv" not in path.parts


def _url_names(patterns: list[Any], unnamed: list[str], prefix: str = "") -> set[str]:
    names: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            route = prefix + str(pattern.pattern)
            if _project_module(pattern.urlconf_module):
                names |= _url_names(pattern.url_patterns, unnamed, route)
            else:
                names.add(route.strip("/^$"))
        elif isinstance(pattern, URLPattern):
            if pattern.name:
                names.add(pattern.name)
            else:
                unnamed.append(prefix + str(pattern.pattern))
    return names


def test_every_url_is_in_the_table() -> None:
    unnamed: list[str] = []
    names = _url_names(get_resolver("crmsync_portal.urls").url_patterns, unnamed)
    names |= _url_names(get_resolver("mailboxes.urls").url_patterns, unnamed)

    assert unnamed == []
    tabled = {name for name, _method in EXPECTED}
    assert sorted(names - tabled) == [], "add these URLs to EXPECTED"
    assert sorted(tabled - names) == [], "EXPECTED names URLs that no longer exist"


def test_every_post_only_url_refuses_get_in_the_table() -> None:
    """The actions (require_POST) are tabled with both methods: GET is 405 for everyone."""
    post_only = ("mailbox-approve", "mailbox-reject", "approvals-approve", "approvals-reject")
    post_only += ("mailbox-test", "mailbox-sync", "mailboxes-test", "profile-test")
    post_only += ("run-confirm-deletes", "link-release", "conflict-apply-other")
    for name in post_only:
        assert set(EXPECTED[(name, "GET")]) == {NOGET}
        assert (name, "POST") in EXPECTED


@pytest.mark.parametrize(
    ("persona", "target"),
    [("admin", "/dashboard/"), ("outsider", "/dashboard/"), ("approver", "/approvals/"), ("auditor", "/audit/")],
)
def test_home_sends_each_role_to_its_first_page(request: pytest.FixtureRequest, persona: str, target: str) -> None:
    response = client_for(request.getfixturevalue(persona)).get("/")
    assert response.status_code == 302
    assert response.url == target


@pytest.mark.parametrize("persona", ["alice", "charlie"])
def test_home_shows_a_welcome_to_people_without_a_role(request: pytest.FixtureRequest, persona: str) -> None:
    response = client_for(request.getfixturevalue(persona)).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Welcome, {persona}" in html
    assert "/dashboard/" not in html
    assert "/approvals/" not in html


def test_navigation_shows_only_the_pages_of_the_role(approver: Any) -> None:
    html = client_for(approver).get("/approvals/").content.decode()
    nav = html.split("</nav>", 1)[0]
    assert 'href="/approvals/"' in nav
    assert 'href="/dashboard/"' not in nav
    assert 'href="/audit/"' not in nav


# CSRF


def csrf_client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_token(client: Client, url: str) -> str:
    html = client.get(url).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_approve_without_csrf_token_is_refused(alice_mailbox: Mailbox, approver: Any) -> None:
    client = csrf_client(approver)
    url = f"/mailboxes/{alice_mailbox.pk}/approve/"

    assert client.post(url).status_code == 403
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.approval_status == ApprovalStatus.PENDING

    token = csrf_token(client, "/approvals/")
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.approval_status == ApprovalStatus.APPROVED


def test_mailbox_create_without_csrf_token_is_refused(
    org: Organization, admin: Any, alice: Any, profile: EmailServerProfile
) -> None:
    client = csrf_client(admin)
    data = {
        "organization": org.pk,
        "owner_type": "user",
        "user": alice.pk,
        "address": "alice@example.com",
        "profile": profile.pk,
        "incoming_method": "server_side",
        "outgoing_method": "server_side",
        "act_method": "server_side",
        "tracking_rule": "replies",
        "is_active": "on",
    }

    assert client.post("/mailboxes/new/", data).status_code == 403
    assert not Mailbox.objects.exists()

    data["csrfmiddlewaretoken"] = csrf_token(client, "/mailboxes/new/")
    assert client.post("/mailboxes/new/", data).status_code == 302
    assert Mailbox.objects.get().address == "alice@example.com"
