from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SyncjobsConfig(AppConfig):
    name = "syncjobs"
    verbose_name = _("Synchronization")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Import the engine and exchangelib here, before an RQ worker forks: a forked job
        # then starts warm instead of importing them again for every run.
        from syncjobs import engine  # noqa: F401
        from syncjobs.backends import ews  # noqa: F401
