"""The client API, /api/v1/ (README: Client API). Small function views over the models and the
feed and push modules; every error is ``{"error": "..."}`` (clients/api/errors.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import api_view, authentication_classes, throttle_classes
from rest_framework.request import Request
from rest_framework.response import Response

from audit.log import Actor
from clients import feed
from clients.api.auth import SignInAuthentication
from clients.api.errors import Conflict, RequestTooLarge
from clients.api.serializers import (
    ChangesOut,
    ErrorOut,
    InstanceOut,
    OperationsIn,
    PromoteIn,
    PromoteOut,
    RegisterIn,
    RegisterOut,
    ResultsOut,
)
from clients.api.throttles import RegisterRateThrottle
from clients.models import ClientError, ClientInstance, Feed, PromotionRequest, synchronizing_organization
from clients.push import Batch

ERRORS = {code: ErrorOut for code in (400, 401, 409, 429)}


def _instance(request: Request) -> ClientInstance:
    instance = request.auth
    if not isinstance(instance, ClientInstance):  # signed in some other way: not a client
        raise exceptions.NotAuthenticated()
    return instance


def _sync_instance(request: Request) -> ClientInstance:
    """The requesting instance, if it is its user's synchronizing one; else a 409."""
    instance = _instance(request)
    if not instance.is_sync_instance:
        raise Conflict(
            _(
                "This client instance is not the synchronizing one: only the synchronizing instance "
                "pulls and pushes changes. Ask to become it: POST /api/v1/instances/me/promote."
            )
        )
    return instance


def _request_out(request: PromotionRequest | None) -> dict[str, Any] | None:
    return None if request is None else {"id": str(request.pk), "status": request.status}


@extend_schema(
    summary="Register a client instance",
    description="HTTP Basic with the user's portal sign-in. Returns the API token once. The user's first "
    "instance becomes the synchronizing one at once; later ones ask to become it (promote).",
    request=RegisterIn,
    responses={201: RegisterOut, 403: ErrorOut, **ERRORS},
)
@api_view(["POST"])
@authentication_classes([SignInAuthentication])
@throttle_classes([RegisterRateThrottle])
@sensitive_variables("token", "body")
def register(request: Request) -> Response:
    data = RegisterIn(data=request.data)
    data.is_valid(raise_exception=True)
    organization = synchronizing_organization(request.user)
    if organization is None:
        raise exceptions.PermissionDenied(_("You are not a member of any organization."))
    instance, token = ClientInstance.register(
        Actor.from_request(request), request.user, organization, **data.validated_data
    )
    body = {"id": str(instance.pk), "token": token, "is_sync_instance": instance.is_sync_instance}
    return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(summary="This client instance", responses={200: InstanceOut, **ERRORS})
@api_view(["GET"])
def me(request: Request) -> Response:
    instance = _instance(request)
    body = {
        "id": str(instance.pk),
        "name": instance.name,
        "is_sync_instance": instance.is_sync_instance,
        "pending_request": _request_out(instance.pending_request()),
    }
    return Response(body)


@extend_schema(
    summary="Ask to become the synchronizing instance",
    description="An approver of the organization decides; where the organization auto-approves, the request "
    "is approved at once. 409 while a request of the user is pending, or for the synchronizing instance.",
    request=PromoteIn,
    responses={202: PromoteOut, **ERRORS},
)
@api_view(["POST"])
def promote(request: Request) -> Response:
    instance = _instance(request)
    data = PromoteIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        promotion = instance.request_promotion(Actor.from_request(request), data.validated_data["reason"])
    except ClientError as error:
        raise Conflict(str(error)) from None
    return Response({"request": _request_out(promotion)}, status=status.HTTP_202_ACCEPTED)


CURSOR = OpenApiParameter("cursor", str, description="The cursor of the previous pull; empty for everything.")
LIMIT = OpenApiParameter("limit", int, description="At most this many changes (default and maximum 500).")


def _pull(request: Request, which: str) -> Response:
    instance = _sync_instance(request)
    limit = request.query_params.get("limit", "")
    maximum = settings.CLIENT_API_PAGE_SIZE
    if limit and not (limit.isdigit() and 1 <= int(limit) <= maximum):
        raise exceptions.ValidationError(_("limit must be a whole number from 1 to %(n)d.") % {"n": maximum})
    try:
        changes, cursor = feed.pull(instance, which, request.query_params.get("cursor", ""), int(limit or maximum))
    except feed.BadCursor as error:
        raise exceptions.ValidationError(str(error)) from None
    except ClientError as error:
        raise Conflict(str(error)) from None
    return Response({"changes": changes, "cursor": cursor})


def _push(request: Request) -> Response:
    instance = _sync_instance(request)
    operations = request.data.get("operations") if isinstance(request.data, dict) else None
    if not isinstance(operations, list):
        raise exceptions.ValidationError(_("The body must be a JSON object with a list of 'operations'."))
    maximum = settings.CLIENT_API_MAX_OPERATIONS
    if len(operations) > maximum:
        raise RequestTooLarge(_("Too many operations: a batch holds at most %(n)d operations.") % {"n": maximum})
    return Response({"results": Batch(instance).apply(operations)})


@extend_schema(
    methods=["GET"],
    summary="Pull changes",
    description="The records the user's sync filters select that changed since the cursor. Records that "
    "left the filters (or were deleted) come as deleted. Recent changes come again after a pull (keep the "
    "higher version); a page with fewer than `limit` changes means caught up. Only the synchronizing "
    "instance may pull (409).",
    parameters=[CURSOR, LIMIT],
    responses={200: ChangesOut, **ERRORS},
)
@extend_schema(
    methods=["POST"],
    summary="Push changes",
    description="Apply operations (live or offline replays). Each gets a result: applied, conflict (nothing "
    "was overwritten; the conflict keeps both versions) or error. A replayed op_id returns its stored "
    "result. Only the synchronizing instance may push (409); at most 500 operations (413).",
    request=OperationsIn,
    responses={200: ResultsOut, 413: ErrorOut, **ERRORS},
)
@api_view(["GET", "POST"])
def changes(request: Request) -> Response:
    return _pull(request, Feed.CHANGES) if request.method == "GET" else _push(request)


@extend_schema(
    summary="Pull the offline records",
    description="The records of the user's offline filters (the sync filters if the user has none), in the "
    "shape and with the cursor of /changes.",
    parameters=[CURSOR, LIMIT],
    responses={200: ChangesOut, **ERRORS},
)
@api_view(["GET"])
def offline(request: Request) -> Response:
    return _pull(request, Feed.OFFLINE)
