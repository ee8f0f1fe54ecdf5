from __future__ import annotations

from django.urls import path, re_path

from audit import views

urlpatterns = [
    path("", views.audit_log, name="audit-log"),
    path("<uuid:pk>/", views.event_detail, name="audit-event"),
    path("object/<str:object_type>/<str:object_id>/", views.object_history, name="audit-object"),
    re_path(r"^export\.(?P<fmt>csv|jsonl)$", views.export, name="audit-export"),
]
