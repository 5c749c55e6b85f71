"""The OpenAPI 3.1 description of every HTTP route of the app: the REST API (batch
transcription, speech, audio clips, usage), health, metrics and the pages.

Written out as data: it is the contract clients read, kept beside the routes it describes, and
served at `GET /openapi.json`. Every operation lists its errors, all in the one error shape
(web/errors.py): 401 where web.auth asks for a token, 503 `queue_unavailable` where the route
needs Redis, 500 for a bug, and its own 4xx. tests/web/test_openapi.py walks the app's routes and
calls each one to keep this true. The chat WebSocket is described in PROTOCOL.md.

In three parts: `parts` (the error shape, schemas and the site check's answers every operation
is built from), `rest` (every route outside /v1) and `v1` (the OpenAI-compatible routes).
"""

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .parts import SCHEMAS, _add_site_check
from .rest import REST_PATHS
from .v1 import V1_PATHS

PATHS: Final[dict[str, Any]] = {**REST_PATHS, **V1_PATHS}
_add_site_check(PATHS)

SPEC: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Council",
        "version": "1",
        "description": "Batch transcription, speech, usage, health and metrics for Council, and OpenAI-compatible "
        "routes under /v1. The chat WebSocket "
        "(`/ws/chat`) is described in web/PROTOCOL.md; `/static/` serves the pages' files.",
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "COUNCIL_API_TOKEN or a user's token from COUNCIL_API_TOKENS. Another user's "
                "batches and audio answer 404, as if they did not exist. With no token configured, none is needed.",
            },
            "token": {
                "type": "apiKey",
                "in": "query",
                "name": "token",
                "description": "The same token, for clients that cannot set headers (<audio>, WebSocket).",
            },
        },
    },
    "security": [{}, {"bearer": []}, {"token": []}],
    "paths": PATHS,
}


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(SPEC)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
