"""The API's OpenAPI schema and its docs page (Swagger UI from drf-spectacular-sidecar's files).

drf-spectacular's own Swagger page puts its start-up script and styles inline, which the
portal's Content Security Policy refuses. This page uses the same vendored Swagger UI files
with a start-up script and styles that are static files of this app: the site's policy stays
as it is for this page too.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerView


class DocsView(SpectacularSwaggerView):
    template_name = "clients/api_docs.html"
    url_name = "api-schema"
    title = "CRM Sync Portal client API"
