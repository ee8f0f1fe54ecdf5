from __future__ import annotations

from django.urls import path

from monitoring import views

urlpatterns = [
    path("monitoring/", views.monitoring, name="monitoring"),
    path("monitoring/mailboxes/", views.mailboxes_in_state, name="monitoring-mailboxes"),
    path("monitoring/alerts/<uuid:pk>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
]
