from __future__ import annotations

from django.urls import path

from selfservice import views

urlpatterns = [
    path("me/mailbox/", views.my_mailbox, name="my-mailbox"),
    path("me/mailbox/new/", views.mailbox_setup, name="my-mailbox-setup"),
    path("me/mailbox/edit/", views.mailbox_edit, name="my-mailbox-edit"),
    path("me/mailbox/status/", views.mailbox_status, name="my-mailbox-status"),
    path("me/mailbox/test/", views.mailbox_test, name="my-mailbox-test"),
    path("me/folders/", views.folder_list, name="my-folders"),
    path("me/folders/add/", views.folder_add, name="my-folder-add"),
    path("me/folders/<int:pk>/remove/", views.folder_remove, name="my-folder-remove"),
    path("me/filters/", views.filter_list, name="my-filters"),
    path("me/filters/new/", views.filter_create, name="my-filter-create"),
    path("me/filters/preview/", views.filter_preview, name="my-filter-preview"),
    path("me/filters/<uuid:pk>/edit/", views.filter_edit, name="my-filter-edit"),
    path("me/filters/<uuid:pk>/activate/", views.filter_activate, name="my-filter-activate"),
    path("me/filters/<uuid:pk>/deactivate/", views.filter_deactivate, name="my-filter-deactivate"),
    path("me/filters/<uuid:pk>/delete/", views.filter_delete, name="my-filter-delete"),
    path("me/filters/templates/", views.template_list, name="my-filter-templates"),
    path("me/filters/templates/new/", views.template_create, name="my-filter-template-create"),
    path("me/filters/templates/reset/", views.template_reset, name="my-filter-templates-reset"),
    path("me/settings/", views.settings_page, name="my-settings"),
    path("me/settings/tracking-rule/", views.tracking_rule, name="my-tracking-rule"),
    path("me/settings/sync-organization/", views.sync_organization, name="my-sync-organization"),
    path("me/conflicts/", views.conflict_list, name="my-conflicts"),
    path("me/conflicts/<uuid:pk>/keep-crm/", views.conflict_keep_crm, name="my-conflict-keep-crm"),
    path("me/conflicts/<uuid:pk>/take-mailbox/", views.conflict_take_mailbox, name="my-conflict-take-mailbox"),
    path(
        "me/conflicts/client/<uuid:pk>/keep-crm/",
        views.client_conflict_keep_crm,
        name="my-client-conflict-keep-crm",
    ),
    path(
        "me/conflicts/client/<uuid:pk>/take-client/",
        views.client_conflict_take_client,
        name="my-client-conflict-take-client",
    ),
]
