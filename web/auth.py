"""Token auth: when `COUNCIL_API_TOKEN` is set, every API call and the WebSocket must carry it,
as `Authorization: Bearer <token>` or, where a browser cannot set headers (WebSocket, <audio>),
as `?token=<token>`. The chat page and its static files load without it; the page asks for it."""

import hmac
import json

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_body

PUBLIC = ("/", "/batch", "/favicon.ico", "/openapi.json")
PUBLIC_PREFIXES = ("/static/",)


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket") or self._public(scope["path"]):
            return await self.app(scope, receive, send)
        presented = self._presented(scope)
        if presented is not None and hmac.compare_digest(presented, self.token):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            # Accept, say why, close with an application code the browser can read.
            await receive()
            await send({"type": "websocket.accept"})
            frame = {"id": None, "type": "error", **error_body("unauthorized", "A valid API token is required.")}
            await send({"type": "websocket.send", "text": json.dumps(frame)})
            await send({"type": "websocket.close", "code": 4401})
            return
        body = json.dumps(
            error_body("unauthorized", "A valid API token is required: send 'Authorization: Bearer <token>'.")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="council"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _public(path: str) -> bool:
        return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)

    @staticmethod
    def _presented(scope: Scope) -> bytes | None:
        auth = Headers(scope=scope).get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip().encode()
        token = QueryParams(scope.get("query_string", b"")).get("token")
        return token.encode() if token else None
