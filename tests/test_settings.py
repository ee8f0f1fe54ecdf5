"""Settings from the environment: typed helpers, generated development secrets, and
production values required when DEBUG is off."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from crmsync_portal.lib import local_secrets
from crmsync_portal.lib.env import envbool, envint, envlist, envstr

ROOT = Path(__file__).resolve().parent.parent

# env helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        (" Yes ", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_envbool_reads_the_usual_spellings(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("PORTAL_FLAG", raw)
    assert envbool("PORTAL_FLAG", not expected) is expected


def test_envbool_uses_the_default_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_FLAG", raising=False)
    assert envbool("PORTAL_FLAG", True) is True
    assert envbool("PORTAL_FLAG", False) is False


def test_envbool_names_the_variable_of_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_FLAG", "maybe")
    with pytest.raises(ValueError, match="PORTAL_FLAG must be one of .* not 'maybe'"):
        envbool("PORTAL_FLAG", False)


def test_envint_reads_numbers_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_NUMBER", " 42 ")
    assert envint("PORTAL_NUMBER", 7) == 42
    monkeypatch.setenv("PORTAL_NUMBER", "")
    assert envint("PORTAL_NUMBER", 7) == 7
    monkeypatch.delenv("PORTAL_NUMBER")
    assert envint("PORTAL_NUMBER", 7) == 7


@pytest.mark.parametrize("raw", ["fifty", "1.5", "10s"])
def test_envint_names_the_variable_of_a_bad_value(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("PORTAL_NUMBER", raw)
    with pytest.raises(ValueError, match=f"PORTAL_NUMBER must be a whole number, not '{raw}'"):
        envint("PORTAL_NUMBER", 7)


def test_envlist_splits_on_commas_and_drops_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_HOSTS", " a.example , ,b.example,")
    assert envlist("PORTAL_HOSTS") == ["a.example", "b.example"]
    monkeypatch.setenv("PORTAL_HOSTS", "")
    assert envlist("PORTAL_HOSTS", "x,y") == []
    monkeypatch.delenv("PORTAL_HOSTS")
    assert envlist("PORTAL_HOSTS", "x, y") == ["x", "y"]


def test_envstr_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_TEXT", raising=False)
    assert envstr("PORTAL_TEXT", "fallback") == "fallback"
    monkeypatch.setenv("PORTAL_TEXT", "given")
    assert envstr("PORTAL_TEXT", "fallback") == "given"


# Development secrets ----------------------------------------------------------------------


def test_local_secrets_are_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "local_secrets.json"
    first = local_secrets.load_or_create(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first["SECRET_KEY"]) >= 50
    Fernet(first["ENCRYPTION_KEYS"].encode())  # a usable Fernet key
    assert json.loads(path.read_text()) == first
    assert local_secrets.load_or_create(path) == first


# The settings module in a fresh interpreter -----------------------------------------------

SHOW_SETTINGS = (
    "import django; from django.conf import settings; django.setup(); "
    "print(settings.DEBUG, settings.ALLOWED_HOSTS, len(settings.ENCRYPTION_KEYS))"
)


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ENCRYPTION_KEYS", "ALLOWED_HOSTS", "DEBUG", "DATABASE_URL"}
    }
    clean |= {"DJANGO_SETTINGS_MODULE": "crmsync_portal.settings", "VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_without_debug_a_secret_key_is_required(tmp_path: Path) -> None:
    result = load_settings(tmp_path, DEBUG="false", ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off." in result.stderr
    assert not (tmp_path / "var" / "local_secrets.json").exists()


def test_without_debug_encryption_keys_are_required(tmp_path: Path) -> None:
    result = load_settings(tmp_path, DEBUG="false", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "ImproperlyConfigured: ENCRYPTION_KEYS must be set when DEBUG is off" in result.stderr


def test_without_debug_and_with_both_secrets_the_settings_load(tmp_path: Path) -> None:
    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    result = load_settings(
        tmp_path, DEBUG="false", SECRET_KEY="x" * 50, ENCRYPTION_KEYS=keys, ALLOWED_HOSTS="portal.example.com"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False ['portal.example.com'] 2"
    assert not (tmp_path / "var" / "local_secrets.json").exists()


def test_debug_is_off_unless_set(tmp_path: Path) -> None:
    result = load_settings(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in result.stderr
    assert not (tmp_path / "var" / "local_secrets.json").exists()


def test_the_run_command_turns_debug_on_when_unset(tmp_path: Path) -> None:
    show = "import sys; sys.argv = ['manage.py', 'runportal']; " + SHOW_SETTINGS
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ENCRYPTION_KEYS", "DEBUG"}}
    clean |= {"DJANGO_SETTINGS_MODULE": "crmsync_portal.settings", "VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run([sys.executable, "-c", show], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True ")


def test_with_debug_the_secrets_are_generated_into_var(tmp_path: Path) -> None:
    result = load_settings(tmp_path, DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['localhost', '127.0.0.1', '[::1]'] 1"
    assert (tmp_path / "var" / "local_secrets.json").exists()


def test_a_bad_debug_value_names_the_variable(tmp_path: Path) -> None:
    result = load_settings(tmp_path, DEBUG="sometimes")
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr
