from __future__ import annotations

from django.urls import path

from mailboxes import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("profiles/", views.profile_list, name="profile-list"),
    path("profiles/new/", views.profile_create, name="profile-create"),
    path("profiles/<uuid:pk>/", views.profile_detail, name="profile-detail"),
    path("profiles/<uuid:pk>/edit/", views.profile_edit, name="profile-edit"),
    path("profiles/<uuid:pk>/delete/", views.profile_delete, name="profile-delete"),
    path("mailboxes/", views.mailbox_list, name="mailbox-list"),
    path("mailboxes/new/", views.mailbox_create, name="mailbox-create"),
    path("mailboxes/change-profile/", views.mailboxes_change_profile, name="mailboxes-change-profile"),
    path("mailboxes/<uuid:pk>/", views.mailbox_detail, name="mailbox-detail"),
    path("mailboxes/<uuid:pk>/edit/", views.mailbox_edit, name="mailbox-edit"),
    path("mailboxes/<uuid:pk>/delete/", views.mailbox_delete, name="mailbox-delete"),
    path("mailboxes/<uuid:pk>/approve/", views.mailbox_approve, name="mailbox-approve"),
    path("mailboxes/<uuid:pk>/reject/", views.mailbox_reject, name="mailbox-reject"),
    path("mailboxes/<uuid:pk>/reject/confirm/", views.mailbox_reject_confirm, name="mailbox-reject-confirm"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/approve/", views.approvals_approve, name="approvals-approve"),
    path("approvals/reject/", views.approvals_reject, name="approvals-reject"),
    path("approvals/reject/confirm/", views.approvals_reject_confirm, name="approvals-reject-confirm"),
]
