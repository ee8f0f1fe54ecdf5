"""Security hardening: client addresses behind proxies, the sign-in throttle, the queue
dashboard for superusers only, production settings and the demo seeding guard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.log import client_ip
from audit.models import AuditEvent
from tests.conftest import PASSWORD, client_for, make_user

ROOT = Path(__file__).resolve().parent.parent
PROXY = {"REMOTE_ADDR": "10.0.0.9"}

# Client addresses ---------------------------------------------------------------------------


def forwarded(value: str) -> Any:
    return RequestFactory().get("/", HTTP_X_FORWARDED_FOR=value, **PROXY)


def test_a_forged_leftmost_forwarded_entry_is_not_taken(settings: Any) -> None:
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    assert client_ip(forwarded("1.2.3.4, 198.51.100.7")) == "198.51.100.7"


def test_the_trusted_proxy_count_picks_the_entry_from_the_right(settings: Any) -> None:
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(forwarded("1.2.3.4, 198.51.100.7, 10.0.0.5")) == "198.51.100.7"
    # Fewer entries than proxies: the header was not made by them.
    assert client_ip(forwarded("198.51.100.7")) == "10.0.0.9"


@pytest.mark.parametrize("value", ["not-an-ip", "1.2.3.4, <script>", "", "999.1.1.1"])
def test_a_header_that_is_no_address_falls_back_to_the_socket(settings: Any, value: str) -> None:
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    assert client_ip(forwarded(value)) == "10.0.0.9"


def test_a_forged_address_never_reaches_the_audit_log(settings: Any, org: Any, admin: Any) -> None:
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    client = client_for(admin)
    client.post(
        reverse("profile-create"),
        {"name": "Forged", "kind": "exchange_online"},
        HTTP_X_FORWARDED_FOR="6.6.6.6, garbage",
        **PROXY,
    )
    ips = set(AuditEvent.objects.values_list("ip", flat=True))
    assert "6.6.6.6" not in ips and "garbage" not in ips


# Sign-in throttle ---------------------------------------------------------------------------


def sign_in(client: Client, url: str, username: str, password: str) -> Any:
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR="192.0.2.50")


@pytest.mark.parametrize("url", ["/login/", "/django-admin/login/"])
def test_thirty_wrong_passwords_then_the_right_one_does_not_sign_in(db: Any, url: str) -> None:
    make_user("victim", is_staff=True)
    client = Client()
    for _ in range(30):
        sign_in(client, url, "victim", "wrong")
    response = sign_in(client, url, "victim", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    text = response.content.decode()
    assert "Too many failed sign-ins" in text and "try again in 15 minutes" in text


def test_the_lockout_holds_per_address_for_other_users(db: Any) -> None:
    make_user("other")
    client = Client()
    for i in range(5):
        sign_in(client, "/login/", f"nobody{i}", "wrong")
    assert sign_in(client, "/login/", "other", PASSWORD).status_code == 429


def test_a_success_resets_the_failures(db: Any, settings: Any) -> None:
    make_user("forgetful")
    client = Client()
    for _ in range(4):
        sign_in(client, "/login/", "forgetful", "wrong")
    assert sign_in(client, "/login/", "forgetful", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        sign_in(client, "/login/", "forgetful", "wrong")
    assert sign_in(client, "/login/", "forgetful", PASSWORD).status_code == 302


def test_a_lockout_is_audited_once_in_the_users_organization(org: Any, alice: Any) -> None:
    client = Client()
    for _ in range(8):
        sign_in(client, "/login/", "alice", "wrong")
    events = AuditEvent.objects.filter(action="user.locked_out")
    assert [(e.object_repr, e.ip, e.organization_id) for e in events] == [("alice", "192.0.2.50", org.pk)]


# Queue dashboard ----------------------------------------------------------------------------


def test_the_queue_dashboard_is_for_superusers_only(db: Any, rq_queues: str) -> None:
    staff = make_user("staff", is_staff=True)
    root = make_user("root", is_staff=True, is_superuser=True)
    assert client_for(staff).get("/django-rq/").status_code == 403
    assert client_for(staff).get("/django-rq/queues/0/").status_code == 403
    assert Client().get("/django-rq/").status_code == 302
    assert client_for(root).get("/django-rq/").status_code == 200


def test_the_django_admin_has_no_copy_of_the_queue_dashboard(db: Any) -> None:
    staff = make_user("staff", is_staff=True, is_superuser=True)
    assert client_for(staff).get("/django-admin/django_rq/dashboard/").status_code == 404


# Production settings ------------------------------------------------------------------------


def test_pages_carry_a_content_security_policy_without_inline_scripts(client: Client, db: Any) -> None:
    policy = client.get("/login/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_templates_have_no_inline_scripts_or_handlers() -> None:
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+=", text):
            offenders.append(path.name)
    assert offenders == []


def test_check_deploy_is_clean_with_production_variables(tmp_path: Path) -> None:
    # Without the test session's own settings (the browser tests allow async-unsafe calls).
    skip = {"DATABASE_URL", "PROXY_SSL_HEADER", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env |= {
        "DEBUG": "false",
        "SECRET_KEY": Fernet.generate_key().decode() * 2,
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "portal.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_COOKIES": "true",
        "VAR_DIR": str(tmp_path),
        # Alerts are emailed: production names its mail server (without one, the check says so).
        "EMAIL_HOST": "smtp.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


# Demo seeding -------------------------------------------------------------------------------


def test_seed_demo_refuses_to_run_with_debug_off(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "false")
    with pytest.raises(CommandError, match="refuses to run with DEBUG off.*--force"):
        call_command("seed_demo", "--ews-url", "http://127.0.0.1:9/EWS/Exchange.asmx")
    assert not AuditEvent.objects.exists()
