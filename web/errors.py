"""One error shape for the whole app: `{"error": {"code": ..., "message": ...}}`.

Every error of the app is a `shared_schemas.Refusal` (a code, a message, `retryable`, an HTTP
status): routes raise `ApiError`, the council, the meter and the queues raise their own. This module
is the HTTP and WebSocket edge: `translate` turns a lower library's error into one (Redis away is
503 `queue_unavailable`, Redis full 503 `storage_full`), and one handler says any of them, as a
response with its status (and Retry-After where the code has one) or as an error frame and close
code 1013 on a WebSocket. Starlette's HTTPException and anything unexpected (500) answer in the
same shape. A turn ends with `error_of(exc)` (see PROTOCOL.md).
"""

import logging
from collections.abc import Awaitable, Callable

import redis.exceptions
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketState

from queues import REDIS_DOWN
from shared_schemas import RETRY_AFTER_S, ErrorCode, Refusal

from .protocol import error_frame

log = logging.getLogger(__name__)


class ApiError(Refusal):
    """What a route answers that is not a success: its HTTP status, a code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = ErrorCode(code)


def storage_full(exc: BaseException) -> bool:
    """Whether Redis refused a write because it reached its `maxmemory` (an OOM error)."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith("OOM ")


def translate(exc: BaseException) -> Refusal | None:
    """The refusal `exc` stands for (itself, when it is one); None for one that is a bug (500)."""
    if isinstance(exc, Refusal):
        return exc
    if storage_full(exc):
        return ApiError(
            503,
            ErrorCode.STORAGE_FULL,
            "The server's store for audio and jobs is full right now, so nothing was stored or queued. "
            "Try again in a minute, or with less audio; an operator can raise Redis's maxmemory.",
        )
    if isinstance(exc, REDIS_DOWN):
        return ApiError(
            503,
            ErrorCode.QUEUE_UNAVAILABLE,
            "The job queue (Redis) cannot be reached right now, so nothing was queued or read. "
            f"Try again in {RETRY_AFTER_S[ErrorCode.QUEUE_UNAVAILABLE]} seconds.",
        )
    return None


INTERNAL_MESSAGE = "Something went wrong on our side. Try again."


def error_of(exc: Exception) -> dict[str, str | bool]:
    """What a turn that met `exc` ends with: `{code, message, retryable}`. A refusal carries its
    own; Redis away or full is `queue_unavailable` / `storage_full`; anything else is a bug
    (`internal`), logged with its trace."""
    if (refusal := translate(exc)) is not None:
        return refusal.as_error()
    log.error("unexpected error", exc_info=exc)
    return {"code": str(ErrorCode.INTERNAL), "message": INTERNAL_MESSAGE, "retryable": True}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def response_of(refusal: Refusal) -> JSONResponse:
    """A refusal over HTTP: its status, the one shape, and Retry-After where its code has one."""
    headers = {"Retry-After": str(refusal.retry_after_s)} if refusal.retry_after_s else {}
    return JSONResponse(error_body(refusal.code, refusal.message), status_code=refusal.status, headers=headers)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.TOO_LARGE}.get(
        exc.status_code, ErrorCode.HTTP_ERROR
    )
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def refused(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    """Any refusal, Redis away or full included, said in the one shape; on a WebSocket, as an
    error frame and close code 1013 (try again later). Expected: logged without a trace."""
    refusal = translate(exc)
    if refusal is None:  # a bug (a WRONGTYPE, say): a 500, or on a WebSocket its close code, 1011
        if isinstance(conn, WebSocket):
            log.exception("unhandled error on the WebSocket %s", conn.url.path, exc_info=exc)
            if conn.application_state is not WebSocketState.DISCONNECTED:
                await conn.close(code=1011)
            return None
        return await server_error(conn, exc)
    if isinstance(exc, redis.exceptions.RedisError):
        log.warning("%s: %s", conn.url.path, exc)
    elif not isinstance(exc, ApiError):  # a route's answer is not news
        log.info("%s refused: %s (%s)", conn.url.path, refusal.message, refusal.code)
    if isinstance(conn, WebSocket):
        if conn.application_state is WebSocketState.CONNECTED:
            await conn.send_json(error_frame(refusal.code, refusal.message))
        await conn.close(code=1013)
        return None
    return response_of(refusal)


async def server_error(request: HTTPConnection, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.scope.get("method", "WEBSOCKET"), request.url.path, exc_info=exc)
    return JSONResponse(error_body(ErrorCode.INTERNAL, INTERNAL_MESSAGE), status_code=500)


handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse | None]]] = {
    HTTPException: http_error,
    Refusal: refused,
    redis.exceptions.ResponseError: refused,
    **dict.fromkeys(REDIS_DOWN, refused),
    Exception: server_error,
}
