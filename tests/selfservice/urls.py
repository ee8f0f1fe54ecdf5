"""The project's URLs with the self-service pages, until the project includes them itself."""

from __future__ import annotations

from django.urls import include, path

from crmsync_portal.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("", include("selfservice.urls")), *project_urlpatterns]
