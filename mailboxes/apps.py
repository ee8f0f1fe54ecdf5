from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = _("Mailboxes")

    def ready(self) -> None:
        # The portal package is no app of its own: its system checks are registered here.
        from crmsync_portal import checks  # noqa: F401
