from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from crmsync_portal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", views.audit_log, name="audit-log"),
    path("", include("mailboxes.urls")),
    path("", include("syncjobs.urls")),
    path("", include("crm.urls")),
    path("django-admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
]
