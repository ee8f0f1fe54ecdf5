"""Secrets at rest: the stored column holds a Fernet token, never the plaintext."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

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


def test_a_wrong_key_gives_a_clear_error(profile: EmailServerProfile, settings: Any) -> None:
    settings.ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(DecryptionError, match="cannot be decrypted with the configured ENCRYPTION_KEYS"):
        EmailServerProfile.objects.get(pk=profile.pk)


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
        EmailServerProfile.objects.get(pk=profile.pk)

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
    with pytest.raises(DecryptionError):
        call_command("rotate_keys", stdout=StringIO())
    assert stored() == [before]
