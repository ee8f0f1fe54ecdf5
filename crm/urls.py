from __future__ import annotations

from django.urls import path

from crm import email_views, views

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

urlpatterns += [
    path("crm/emails/", email_views.email_list, name="email-list"),
    path("crm/emails/new/", email_views.email_create, name="email-create"),
    path("crm/emails/<uuid:pk>/", email_views.email_detail, name="email-detail"),
    path("crm/emails/<uuid:pk>/body/", email_views.email_body, name="email-body"),
    path("crm/emails/<uuid:pk>/status/", email_views.email_status, name="email-status"),
    path("crm/emails/<uuid:pk>/reply/", email_views.email_reply, name="email-reply"),
    path("crm/emails/<uuid:pk>/edit/", email_views.email_edit, name="email-edit"),
    path("crm/emails/<uuid:pk>/track/", email_views.email_track, name="email-track"),
    path("crm/queues/", email_views.queue_list, name="queue-list"),
    path("crm/queues/<uuid:pk>/", email_views.queue_detail, name="queue-detail"),
    path("crm/queue-items/<uuid:pk>/assign/", email_views.queue_item_assign, name="queue-item-assign"),
    path("crm/queue-items/<uuid:pk>/done/", email_views.queue_item_done, name="queue-item-done"),
]
