// The API docs page (Swagger UI, vendored by drf-spectacular-sidecar). A static file, because the
// Content Security Policy allows no inline scripts: the page gives the schema's URL in a data attribute.
"use strict";

(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    deepLinking: true,
    persistAuthorization: false,
    // No call to the public validator service: the portal works offline.
    validatorUrl: null,
  });
})();
