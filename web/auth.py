"""Token auth: when tokens are configured (`COUNCIL_API_TOKEN`, `COUNCIL_API_TOKENS`), every API
call and the WebSocket must carry one, as `Authorization: Bearer <token>` or, where a browser
cannot set headers (WebSocket, <audio>), as `?token=<token>`. The chat page and its static files
load without it; the page asks for it.

Each token names a user; the middleware puts the user's name in `scope["user"]` ("anonymous" when
no token is configured) and handlers read it with `user_of`.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping

from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from shared_schemas import ErrorCode

from .errors import error_body
from .settings import ANONYMOUS

PUBLIC = ("/", "/batch", "/favicon.ico", "/openapi.json", "/docs")
PUBLIC_PREFIXES = ("/static/", "/docs/static/")


def _digest(token: str | bytes) -> bytes:
    # Compared as digests: equal lengths, so compare_digest says nothing about a token's length.
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


class TokenAuth:
    def __init__(self, app: ASGIApp, tokens: Mapping[str, str]) -> None:
        """`tokens`: token -> user. Empty: no token needed, everyone is "anonymous"."""
        self.app = app
        self.users = [(_digest(token), user) for token, user in tokens.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if not self.users:
            scope["user"] = ANONYMOUS
            return await self.app(scope, receive, send)
        user = self.user(scope)
        if user is not None or self.public(scope["path"]):
            scope["user"] = user or ANONYMOUS
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            # Accept, say why, close with an application code the browser can read.
            await receive()
            await send({"type": "websocket.accept"})
            frame = {
                "id": None,
                "type": "error",
                **error_body(ErrorCode.UNAUTHORIZED, "A valid API token is required."),
            }
            await send({"type": "websocket.send", "text": json.dumps(frame)})
            await send({"type": "websocket.close", "code": 4401})
            return
        body = json.dumps(
            error_body(ErrorCode.UNAUTHORIZED, "A valid API token is required: send 'Authorization: Bearer <token>'.")
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

    def user(self, scope: Scope) -> str | None:
        """The user whose token the call carries; None for no token or a wrong one."""
        presented = self._presented(scope)
        if presented is None:
            return None
        digest, found = _digest(presented), None
        for known, user in self.users:  # every one compared: the time says nothing about which
            if hmac.compare_digest(digest, known):
                found = user
        return found

    @staticmethod
    def public(path: str) -> bool:
        return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)

    @staticmethod
    def _presented(scope: Scope) -> bytes | None:
        auth = Headers(scope=scope).get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip().encode()
        token = QueryParams(scope.get("query_string", b"")).get("token")
        return token.encode() if token else None


def user_of(conn: HTTPConnection) -> str:
    """The name of the user making this call (a request or a WebSocket), as TokenAuth found it."""
    user = conn.scope.get("user")
    if not isinstance(user, str):
        raise RuntimeError("no user on this connection: the app must run behind web.auth.TokenAuth")
    return user
