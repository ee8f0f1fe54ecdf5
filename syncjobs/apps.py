from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SyncjobsConfig(AppConfig):
    name = "syncjobs"
    verbose_name = _("Synchronization")
    default_auto_field = "django.db.models.BigAutoField"
