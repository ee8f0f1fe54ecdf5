"""Email in the Django admin: operators read emails (with recipients and receipts), tracked folders,
queue items and ignored messages; the channels and the pages change them."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from crm.models import Contact, Email, EmailReceipt, EmailRecipient, IgnoredMessage, QueueItem, TrackedFolder
from tests.conftest import client_for, make_mailbox, make_user

pytestmark = pytest.mark.django_db


def test_operators_read_the_email_models(org: Any, alice: Any, alice_mailbox: Any, profile: Any) -> None:
    contact = Contact.objects.create(organization=org, owner=alice, last_name="Lee", email="ann@x.example")
    email = Email.objects.create(
        organization=org, owner=alice, subject="Quote", direction="incoming", status="received", mailbox=alice_mailbox
    )
    EmailRecipient.objects.create(email=email, kind="from", address="ann@x.example", contact=contact)
    EmailReceipt.objects.create(email=email, mailbox=alice_mailbox, source_id="AAMk-1", folder="inbox")
    queue = make_mailbox(org, None, "support@example.com", profile, owner_type="queue", queue_name="Support")
    objects = {
        Email: email,
        TrackedFolder: TrackedFolder.objects.create(
            mailbox=alice_mailbox, folder_name="Acme", regarding_contact=contact
        ),
        QueueItem: QueueItem.objects.create(queue=queue, email=email),
        IgnoredMessage: IgnoredMessage.objects.create(mailbox=alice_mailbox, source_id="AAMk-2", reason="Malformed"),
    }
    client = client_for(make_user("root", is_staff=True, is_superuser=True))
    for model, obj in objects.items():
        name = f"admin:crm_{model._meta.model_name}"
        assert client.get(reverse(f"{name}_changelist")).status_code == 200, model
        assert client.get(reverse(f"{name}_add")).status_code == 403, model
        page = client.get(reverse(f"{name}_change", args=[obj.pk]))
        assert page.status_code == 200 and not page.context["has_change_permission"], model
        assert client.get(reverse(f"{name}_delete", args=[obj.pk])).status_code == 403, model
    page = client.get(reverse("admin:crm_email_change", args=[email.pk])).content.decode()
    assert "ann@x.example" in page and "AAMk-1" in page  # its recipients and receipts, inline
    assert Email.objects.get().subject == "Quote"
