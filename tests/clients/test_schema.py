"""The OpenAPI schema and the docs page."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/v1/instances": {"post"},
    "/api/v1/instances/me": {"get"},
    "/api/v1/instances/me/promote": {"post"},
    "/api/v1/changes": {"get", "post"},
    "/api/v1/offline": {"get"},
}


def test_the_schema_validates_and_describes_every_endpoint(tmp_path: pytest.TempPathFactory) -> None:
    out = tmp_path / "schema.yaml"
    errors = StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out), stderr=errors)

    schema = yaml.safe_load(out.read_text())
    assert {path: set(ops) for path, ops in schema["paths"].items()} == PATHS
    schemes = schema["components"]["securitySchemes"]
    assert schemes["token"] == {**schemes["token"], "type": "http", "scheme": "bearer"}
    assert schemes["signIn"]["scheme"] == "basic"
    assert schema["paths"]["/api/v1/instances"]["post"]["security"] == [{"signIn": []}]


def test_the_schema_is_served_as_json_and_yaml() -> None:
    client = Client()

    assert client.get("/api/v1/schema").content.startswith(b"openapi: 3")
    assert client.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()["openapi"].startswith("3")


def test_the_docs_page_keeps_the_sites_content_security_policy() -> None:
    response = Client().get("/api/v1/docs")

    html = response.content.decode()
    assert response.status_code == 200
    assert "script-src 'self';" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "<script>" not in html and "<style" not in html and "style=" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "/static/clients/api-docs.js" in html
    assert 'data-schema-url="/api/v1/schema"' in html
    assert "https://" not in html  # vendored: no CDN
