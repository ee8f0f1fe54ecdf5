"""How a client proves who it is.

- ``BearerTokenAuthentication``: ``Authorization: Bearer <token>``, the token a registration
  returned. Unknown or revoked tokens are a 401. ``request.auth`` is the ClientInstance.
- ``SignInAuthentication``: HTTP Basic with the user's portal sign-in, for registering an
  instance only. It goes through ``django.contrib.auth.authenticate`` with the Django request,
  so the sign-in throttle (django-axes, crmsync_portal/auth.py) counts and refuses it as it
  does the sign-in page.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.contrib.auth import authenticate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from clients.models import ClientInstance


class SignInBlocked(exceptions.APIException):
    status_code = 429
    default_detail = _("Too many failed sign-ins: sign-in is blocked for a while. Try again later.")
    default_code = "sign_in_blocked"


def _credentials(request: Request, keyword: bytes) -> bytes | None:
    """The credentials after ``keyword`` in the Authorization header; None for another scheme."""
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != keyword.lower():
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed(
            _("Malformed Authorization header: use '%(scheme)s <credentials>'.") % {"scheme": keyword.decode()}
        )
    return parts[1]


class BearerTokenAuthentication(BaseAuthentication):
    @sensitive_variables("token", "text")
    def authenticate(self, request: Request) -> tuple[Any, ClientInstance] | None:
        token = _credentials(request, b"Bearer")
        if token is None:
            return None
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked token.")) from None
        instance = ClientInstance.for_token(text)
        if instance is None:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked token."))
        instance.touch(timezone.now())
        return instance.user, instance

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class SignInAuthentication(BaseAuthentication):
    @sensitive_variables("encoded", "password")
    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        encoded = _credentials(request, b"Basic")
        if encoded is None:
            return None
        try:
            username, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise exceptions.AuthenticationFailed(_("Malformed Basic credentials."))
        django_request = request._request
        user = authenticate(django_request, username=username, password=password)
        if getattr(django_request, "axes_locked_out", False):
            # Answered here, as JSON: django-axes' middleware would put the sign-in page in its place.
            django_request.axes_locked_out = False
            raise SignInBlocked()
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed(_("Wrong user name or password."))
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="api"'
