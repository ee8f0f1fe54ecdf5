from __future__ import annotations

from django.contrib import admin
from django.templatetags.static import static
from django.urls import URLPattern, include, path
from django.views.generic import RedirectView
from django_rq.urls import urlpatterns as django_rq_urlpatterns

from crmsync_portal import health, views

# The queue dashboard, for superusers only (django-rq lets any staff user in).
rq_urls = (
    [
        URLPattern(p.pattern, views.superuser_required(p.callback), p.default_args, p.name)
        for p in django_rq_urlpatterns
    ],
    "django_rq",
)

urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True), name="favicon"),
    # LoginView puts the request's host in site_name; the portal's own name goes on the page.
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("audit/", include("audit.urls")),
    # For load balancers and Prometheus (crmsync_portal/health.py): no sign-in; /metrics checks its own.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    # POST language=da|en: the language chooser in the footer of every page.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("mailboxes.urls")),
    path("", include("syncjobs.urls")),
    path("", include("crm.urls")),
    path("", include("clients.urls")),
    path("", include("selfservice.urls")),
    path("", include("monitoring.urls")),
    path("django-admin/", admin.site.urls),
    path("django-rq/", include(rq_urls)),
]
