"""The API's request and response shapes: validation of the simple inputs, and the OpenAPI
description of all of them. Pushed operations are validated one by one (clients/push.py), so
that one bad operation is an error in its result, not a 400 for the batch."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from clients.models import REASON_MAX
from crm.models import RecordType


class ErrorOut(serializers.Serializer):
    error = serializers.CharField()


class RegisterIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text=_("A name for this client, e.g. 'Outlook on my laptop'."))
    machine = serializers.CharField(max_length=100, help_text=_("The computer's name."))
    client_version = serializers.CharField(max_length=50)


class RegisterOut(serializers.Serializer):
    id = serializers.UUIDField()
    token = serializers.CharField(help_text=_("Shown this once: send it as 'Authorization: Bearer <token>'."))
    is_sync_instance = serializers.BooleanField()


class RequestOut(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["pending", "approved", "rejected", "cancelled"])


class InstanceOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    is_sync_instance = serializers.BooleanField()
    pending_request = RequestOut(allow_null=True)


class PromoteIn(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, required=False, allow_blank=True, default="")


class PromoteOut(serializers.Serializer):
    request = RequestOut()


class ChangeOut(serializers.Serializer):
    type = serializers.ChoiceField(choices=RecordType.values)
    id = serializers.UUIDField()
    version = serializers.IntegerField()
    deleted = serializers.BooleanField()
    fields = serializers.DictField(
        allow_null=True, help_text=_("The synced fields (crm/directions.py SYNC_FIELDS); null when deleted.")
    )


class ChangesOut(serializers.Serializer):
    changes = ChangeOut(many=True)
    cursor = serializers.CharField(help_text=_("Opaque: send it back as ?cursor= on the next pull."))


class OperationIn(serializers.Serializer):
    op_id = serializers.CharField(
        max_length=100, help_text=_("Unique per instance: a replay returns the stored result.")
    )
    op = serializers.ChoiceField(choices=["create", "update", "delete"])
    type = serializers.ChoiceField(choices=RecordType.values)
    id = serializers.UUIDField(required=False, help_text=_("Required for update and delete; optional for create."))
    base_version = serializers.IntegerField(required=False, min_value=1)
    fields = serializers.DictField(required=False)


class OperationsIn(serializers.Serializer):
    operations = OperationIn(many=True)


class ResultOut(serializers.Serializer):
    op_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["applied", "conflict", "error"])
    id = serializers.UUIDField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    conflict_id = serializers.UUIDField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class ResultsOut(serializers.Serializer):
    results = ResultOut(many=True)
