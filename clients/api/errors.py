"""Every API error is ``{"error": "..."}`` with its status (DRF's EXCEPTION_HANDLER)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = gettext_lazy("The request is too large.")
    default_code = "too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The request conflicts with the state of the client instance.")
    default_code = "conflict"


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [text for key, value in detail.items() for text in _flatten(value, f"{key}: ")]
    if isinstance(detail, list):
        return [text for value in detail for text in _flatten(value, prefix)]
    return [f"{prefix}{detail}"]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (status, headers such as WWW-Authenticate and Retry-After), with the body
    replaced by one sentence."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ParseError):
        message = _("Malformed JSON: %(detail)s") % {"detail": exc.detail}
    elif isinstance(exc, exceptions.Throttled):
        message = _("Too many requests: try again in %(seconds)d seconds.") % {"seconds": int(exc.wait or 1)}
    elif isinstance(exc, exceptions.APIException):
        message = " ".join(_flatten(exc.detail))
    else:
        message = " ".join(_flatten(response.data.get("detail", response.data)))
    response.data = {"error": message}
    return response
