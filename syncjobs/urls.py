from __future__ import annotations

from django.urls import path

from syncjobs import views

urlpatterns = [
    path("mailboxes/<uuid:pk>/status/", views.mailbox_status, name="mailbox-status"),
    path("mailboxes/<uuid:pk>/test/", views.mailbox_test, name="mailbox-test"),
    path("mailboxes/<uuid:pk>/sync/", views.mailbox_sync, name="mailbox-sync"),
    path("mailboxes/test/", views.mailboxes_test, name="mailboxes-test"),
    path("profiles/<uuid:pk>/test/", views.profile_test, name="profile-test"),
    path("runs/<uuid:pk>/confirm-deletes/", views.run_confirm_deletes, name="run-confirm-deletes"),
    path("items/<uuid:pk>/release/", views.link_release, name="link-release"),
    path("conflicts/<uuid:pk>/apply-other-side/", views.conflict_apply_other, name="conflict-apply-other"),
]
