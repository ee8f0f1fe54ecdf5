from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from clients import views
from clients.api import schema  # noqa: F401  (the security schemes of the OpenAPI schema)
from clients.api import views as api
from clients.api.docs import DocsView

urlpatterns = [
    # Pages
    path("clients/", views.instance_list, name="client-list"),
    path("clients/<uuid:pk>/revoke/", views.instance_revoke, name="client-revoke"),
    path("clients/requests/", views.request_queue, name="client-requests"),
    path("clients/requests/approve/", views.requests_approve, name="client-requests-approve"),
    path("clients/requests/reject/", views.requests_reject, name="client-requests-reject"),
    path("clients/requests/<uuid:pk>/approve/", views.request_approve, name="client-request-approve"),
    path("clients/requests/<uuid:pk>/reject/", views.request_reject, name="client-request-reject"),
    # The client API (README: Client API)
    path("api/v1/instances", api.register, name="api-instances"),
    path("api/v1/instances/me", api.me, name="api-instance-me"),
    path("api/v1/instances/me/promote", api.promote, name="api-instance-promote"),
    path("api/v1/changes", api.changes, name="api-changes"),
    path("api/v1/offline", api.offline, name="api-offline"),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs", DocsView.as_view(), name="api-docs"),
]
