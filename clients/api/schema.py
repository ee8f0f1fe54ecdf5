"""The API's authentication as OpenAPI security schemes (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "clients.api.auth.BearerTokenAuthentication"
    name = "token"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The token POST /api/v1/instances returned (shown once).",
        }


class SignInScheme(OpenApiAuthenticationExtension):
    target_class = "clients.api.auth.SignInAuthentication"
    name = "signIn"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "basic", "description": "The user's portal sign-in."}
