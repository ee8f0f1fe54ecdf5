from __future__ import annotations

from django.urls import path

from crm import views

urlpatterns = []
for kind in views.KINDS.values():
    args = {"kind": kind.name}
    urlpatterns += [
        path(f"crm/{kind.slug}/", views.record_list, args, name=f"{kind.name}-list"),
        path(f"crm/{kind.slug}/new/", views.record_create, args, name=f"{kind.name}-create"),
        path(f"crm/{kind.slug}/<uuid:pk>/", views.record_detail, args, name=f"{kind.name}-detail"),
        path(f"crm/{kind.slug}/<uuid:pk>/edit/", views.record_edit, args, name=f"{kind.name}-edit"),
        path(f"crm/{kind.slug}/<uuid:pk>/delete/", views.record_delete, args, name=f"{kind.name}-delete"),
    ]
