from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("CRM records")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm import signals  # noqa: F401  (connects the receivers)
