"""Secrets at rest: the stored column holds a Fernet token, never the plaintext."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.log import MASK
from audit.models import AuditEvent
from crmsync_portal.lib import crypto
from crmsync_portal.lib.crypto import DecryptionError
from mailboxes.models import EmailServerProfile, Mailbox, Organization
from tests.conftest import make_profile

pytestmark = pytest.mark.django_db

PLAINTEXT = "s3cret-profile-pw"  # the profile fixture's password


def stored(column: str = "password", table: str = "mailboxes_emailserverprofile") -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")  # noqa: S608 (fixed names)
        return [row[0] for row in cursor.fetchall()]


def new_key() -> str:
    return Fernet.generate_key().decode()


def test_the_stored_column_never_contains_the_plaintext(profile: EmailServerProfile) -> None:
    [raw] = stored()
    assert PLAINTEXT not in raw
    assert raw.startswith("gAAAAA")  # a Fernet token
    assert crypto.decrypt(raw) == PLAINTEXT


def test_every_encrypted_column_is_encrypted(org: Organization, alice: Any) -> None:
    make_profile(
        org,
        "OAuth",
        kind="exchange_online",
        auth_type="oauth2",
        oauth_tenant_id="t",
        oauth_client_id="c",
        oauth_client_secret="client-secret-value",
    )
    mailbox = Mailbox(organization=org, user=alice, address="alice@example.com", password="mailbox-pw-value")
    mailbox.save()
    assert "client-secret-value" not in "".join(stored("oauth_client_secret"))
    [raw] = stored("password", "mailboxes_mailbox")
    assert "mailbox-pw-value" not in raw
    assert Mailbox.objects.get(pk=mailbox.pk).password == "mailbox-pw-value"


def test_a_secret_round_trips(profile: EmailServerProfile) -> None:
    assert EmailServerProfile.objects.get(pk=profile.pk).password == PLAINTEXT
    profile.refresh_from_db()
    assert profile.password == PLAINTEXT


def test_the_same_secret_encrypts_differently_each_time() -> None:
    assert crypto.encrypt(PLAINTEXT) != crypto.encrypt(PLAINTEXT)


def test_an_empty_secret_stays_empty(org: Organization) -> None:
    profile = make_profile(org, "No password", password="")
    assert stored() == [""]
    assert EmailServerProfile.objects.get(pk=profile.pk).password == ""


def test_a_wrong_key_gives_a_clear_error_when_the_secret_is_read(profile: EmailServerProfile, settings: Any) -> None:
    settings.ENCRYPTION_KEYS = [new_key()]
    loaded = EmailServerProfile.objects.get(pk=profile.pk)  # loading a row decrypts nothing
    assert loaded.name == profile.name
    with pytest.raises(DecryptionError, match="cannot be decrypted with the configured ENCRYPTION_KEYS"):
        loaded.password  # noqa: B018


def test_a_corrupt_token_gives_a_clear_error() -> None:
    with pytest.raises(DecryptionError, match="ENCRYPTION_KEYS"):
        crypto.decrypt("not-a-token")


def test_rotate_keys_re_encrypts_with_the_first_key(
    profile: EmailServerProfile, alice_mailbox: Mailbox, settings: Any
) -> None:
    old = list(settings.ENCRYPTION_KEYS)
    alice_mailbox.password = "mailbox-pw-value"
    alice_mailbox.save()
    [before] = stored()
    new = new_key()

    # 1. A new key in front: what the old key encrypted still decrypts.
    settings.ENCRYPTION_KEYS = [new, *old]
    assert EmailServerProfile.objects.get(pk=profile.pk).password == PLAINTEXT
    # Without the old key it would not (so the steps below prove something).
    settings.ENCRYPTION_KEYS = [new]
    with pytest.raises(DecryptionError):
        EmailServerProfile.objects.get(pk=profile.pk).password  # noqa: B018

    # 2. Rotate with both keys configured.
    settings.ENCRYPTION_KEYS = [new, *old]
    out = StringIO()
    call_command("rotate_keys", stdout=out)
    assert "Re-encrypted 2 secret(s)." in out.getvalue()

    # 3. The old key can go.
    settings.ENCRYPTION_KEYS = [new]
    [after] = stored()
    assert after != before
    assert PLAINTEXT not in after
    assert EmailServerProfile.objects.get(pk=profile.pk).password == PLAINTEXT
    assert Mailbox.objects.get(pk=alice_mailbox.pk).password == "mailbox-pw-value"


def test_rotate_keys_refuses_a_secret_no_key_decrypts(profile: EmailServerProfile, settings: Any) -> None:
    [before] = stored()
    settings.ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(CommandError, match=f"EmailServerProfile {profile.pk} cannot be decrypted"):
        call_command("rotate_keys", stdout=StringIO())
    assert stored() == [before]
    assert not AuditEvent.objects.filter(action__endswith=".secrets_reencrypted").exists()


def test_rotate_keys_audits_each_rotated_row_without_the_secret(
    profile: EmailServerProfile, alice_mailbox: Mailbox, settings: Any
) -> None:
    settings.ENCRYPTION_KEYS = [new_key(), *settings.ENCRYPTION_KEYS]
    call_command("rotate_keys", stdout=StringIO())

    [event] = AuditEvent.objects.filter(action="server_profile.secrets_reencrypted")
    assert event.object_id == str(profile.pk)
    assert event.actor_name == "rotate_keys"
    assert event.organization_id == profile.organization_id
    assert event.changes == {"password": [MASK, MASK]}
    assert PLAINTEXT not in str(event.changes)
    # alice's mailbox has no password of its own: nothing to rotate, nothing recorded.
    assert not AuditEvent.objects.filter(action="mailbox.secrets_reencrypted").exists()


def save_meanwhile(monkeypatch: pytest.MonkeyPatch, profile: EmailServerProfile, passwords: list[str]) -> None:
    """Make a save of the profile's password happen between rotate_keys' read and its write."""
    real_rotate = crypto.rotate

    def rotate_after_a_concurrent_save(token: str) -> str:
        if passwords:
            EmailServerProfile.objects.filter(pk=profile.pk).update(password=passwords.pop(0))
        return real_rotate(token)

    monkeypatch.setattr(crypto, "rotate", rotate_after_a_concurrent_save)


def test_rotate_keys_never_overwrites_a_password_saved_while_it_runs(
    profile: EmailServerProfile, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = new_key()
    settings.ENCRYPTION_KEYS = [new, *settings.ENCRYPTION_KEYS]
    save_meanwhile(monkeypatch, profile, ["saved-while-rotating"])
    out = StringIO()
    call_command("rotate_keys", stdout=out)

    # The changed row was read again and rotated: the new password, under the new key only.
    settings.ENCRYPTION_KEYS = [new]
    assert EmailServerProfile.objects.get(pk=profile.pk).password == "saved-while-rotating"
    assert "Re-encrypted 1 secret(s)." in out.getvalue()
    assert AuditEvent.objects.filter(action="server_profile.secrets_reencrypted").count() == 1


def test_rotate_keys_skips_a_row_that_changes_twice(
    profile: EmailServerProfile, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ENCRYPTION_KEYS = [new_key(), *settings.ENCRYPTION_KEYS]
    save_meanwhile(monkeypatch, profile, ["first-save", "second-save"])
    out = StringIO()
    call_command("rotate_keys", stdout=out)

    assert EmailServerProfile.objects.get(pk=profile.pk).password == "second-save"
    assert "Re-encrypted 0 secret(s)." in out.getvalue()
    assert "1 secret(s) were changed twice" in out.getvalue()
    assert not AuditEvent.objects.filter(action="server_profile.secrets_reencrypted").exists()
