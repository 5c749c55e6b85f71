"""A cap on the HTTP requests one user has under way at once, all connections together: past it,
429 `rate_limited` at once, in the one error shape. 400 concurrent chat completions of one user had
pushed other users' first audio to 2-4 s on the one event loop; their work is bounded here before
it starts. A streamed answer (server-sent events) counts until it ends. WebSockets are bounded by
the frame pace instead (pace.py); the static pages and files are not counted.
"""

from collections import Counter

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared_schemas import ErrorCode

from .errors import error_body
from .settings import ANONYMOUS

# Sooner than RETRY_AFTER_S[rate_limited] (jobs waiting to run): a request under way ends quickly.
REQUEST_CAP_RETRY_AFTER_S = 1


class RequestsPerUser:
    def __init__(self, app: ASGIApp, cap: int) -> None:
        self.app = app
        self.cap = cap
        self.running: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self.cap <= 0 or not path.startswith(("/api/", "/v1/")):
            return await self.app(scope, receive, send)
        user = str(scope.get("user") or ANONYMOUS)
        if self.running[user] >= self.cap:
            return await self._refuse(scope, receive, send)
        self.running[user] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running[user] -= 1
            if self.running[user] <= 0:
                del self.running[user]

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"You have {self.cap} requests under way, as many as one user may at once "
            f"(COUNCIL_MAX_REQUESTS_PER_USER). Wait for some to finish, and try again."
        )
        body = error_body(ErrorCode.RATE_LIMITED, message)
        headers = {"Retry-After": str(REQUEST_CAP_RETRY_AFTER_S)}
        await JSONResponse(body, status_code=429, headers=headers)(scope, receive, send)
