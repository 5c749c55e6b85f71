"""`GET /docs`: Swagger UI over `/openapi.json`, to read the API and try its routes in a browser.

Swagger UI's files come from the `swagger-ui-py` package (pinned; it bundles Swagger UI 5, which
reads OpenAPI 3.1), served by the app itself under `/docs/static/`: the page loads nothing from a
CDN, so it works offline and behind the app's own Host and Origin checks. Only the package's
static folder is used (never its framework handlers). A token, where one is configured, goes in
Swagger UI's Authorize dialog.
"""

import importlib.util
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from shared_schemas import ErrorCode

from .errors import error_body

PACKAGE: Final = "swagger_ui"

PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Council API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
"""


def static_dir() -> Path | None:
    """Swagger UI's files in the installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


async def docs(request: Request) -> Response:
    if static_dir() is None:
        message = "Swagger UI is not installed on the app's machine: pip install swagger-ui-py (the app extra)."
        return JSONResponse(error_body(ErrorCode.NOT_FOUND, message), status_code=404)
    return HTMLResponse(PAGE)


def routes() -> list[Route | Mount]:
    folder = static_dir()
    mounted = [Mount("/docs/static", StaticFiles(directory=folder), name="docs-static")] if folder else []
    return [Route("/docs", docs, methods=["GET"]), *mounted]
