from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from audit.mixins import connect_deletion_records
        from audit.triggers import install_after_migrate

        connect_deletion_records()
        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid="audit-triggers")
