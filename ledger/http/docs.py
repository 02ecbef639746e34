"""The /docs page: Swagger UI from the installed swagger-ui-bundle, nothing fetched elsewhere."""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ledger.http.spec import Doc, documented

# Swagger UI 5's dist files as the swagger-ui-py package ships them (swagger-ui-bundle.js,
# swagger-ui.css, favicons); only the files, none of its framework glue.
ASSETS = Path(swagger_ui.__file__).parent / "static"

# Every URL is relative to the page at .../docs, so the page also works behind a proxy that
# strips a prefix; /docs/ is redirected to /docs by the router, which keeps that base right.
# Only the "apis" preset and BaseLayout: the standalone preset adds a top bar that loads
# specs by URL, and validatorUrl is off because the default validator is an outside service.
# The token form exists because /openapi.json itself needs the token when LEDGER_API_TOKEN
# is set, and Swagger's Authorize button can only appear once that document has loaded.
PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Order ledger API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
<style>#token { font-family: sans-serif; margin: 1em 20px; }</style>
</head>
<body>
<form id="token">
<label>API token, when the server sets LEDGER_API_TOKEN:
<input name="token" type="password" autocomplete="off"></label>
<button type="submit">Use token</button>
</form>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script>
"use strict";
const KEY = "ledger-api-token";
function load() {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null,
    requestInterceptor: (request) => {
      const token = sessionStorage.getItem(KEY);
      if (token && !request.headers.Authorization) {
        request.headers.Authorization = "Bearer " + token;
      }
      return request;
    },
  });
}
document.getElementById("token").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, event.target.elements.token.value);
  load();
});
load();
</script>
</body>
</html>
"""


@documented(Doc("This API, rendered by Swagger UI", media_type="text/html", public=True))
async def page(request: Request) -> Response:
    """The Swagger UI page for /openapi.json."""
    return Response(PAGE, media_type="text/html")


def routes() -> list[BaseRoute]:
    """The docs page and the static Swagger UI files it loads."""
    return [
        Route("/docs", page, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=ASSETS), name="docs-assets"),
    ]
