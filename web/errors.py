"""One error shape for the whole app: `{"error": {"code": ..., "message": ...}}`.

Routes raise `ApiError`; the handlers here turn it, Starlette's HTTPException and any unexpected
exception into that shape. WebSocket errors use the same fields (see PROTOCOL.md). A lower
library's errors are translated here too (`translate`): Redis being away is 503 `queue_unavailable`.
"""

import logging
from collections.abc import Awaitable, Callable

import redis.exceptions
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketState

from queues import REDIS_DOWN, BlobTooLarge, RateLimited
from shared_schemas import ErrorCode, Refusal

from .protocol import error_frame

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# Redis gone or restarting (BusyLoadingError, while it reads its AOF, is a ConnectionError).
REDIS_UNAVAILABLE = REDIS_DOWN  # (defined once, in queues)
RETRY_AFTER_S = 5


def storage_full(exc: BaseException) -> bool:
    """Whether Redis refused a write because it reached its `maxmemory` (an OOM error)."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith("OOM ")


def translate(exc: BaseException) -> ApiError | None:
    """The ApiError a lower library's exception stands for; None for one that is a bug (500)."""
    if isinstance(exc, Refusal):  # every refusal says its code and status (shared_schemas.Refusal)
        return ApiError(exc.status, exc.code, exc.message)
    if storage_full(exc):
        return ApiError(
            503,
            ErrorCode.STORAGE_FULL,
            "The server's store for audio and jobs is full right now, so nothing was stored or queued. "
            "Try again in a minute, or with less audio; an operator can raise Redis's maxmemory.",
        )
    if isinstance(exc, REDIS_UNAVAILABLE):
        return ApiError(
            503,
            ErrorCode.QUEUE_UNAVAILABLE,
            "The job queue (Redis) cannot be reached right now, so nothing was queued or read. "
            f"Try again in {RETRY_AFTER_S} seconds.",
        )
    return None


INTERNAL_MESSAGE = "Something went wrong on our side. Try again."


def error_of(exc: Exception) -> dict[str, str | bool]:
    """What a turn that met `exc` ends with: `{code, message, retryable}`. A refusal carries its
    own; Redis away or full is `queue_unavailable` / `storage_full` (worth another try later); a
    blob too large is `audio_too_large`; anything else is a bug (`internal`), logged with its trace."""
    if isinstance(exc, Refusal):
        return exc.as_error()
    if (api := translate(exc)) is not None:
        return {"code": str(api.code), "message": api.message, "retryable": True}
    if isinstance(exc, BlobTooLarge):
        message = f"The recording is too large: {exc}."
        return {"code": str(ErrorCode.AUDIO_TOO_LARGE), "message": message, "retryable": False}
    log.error("unexpected error", exc_info=exc)
    return {"code": str(ErrorCode.INTERNAL), "message": INTERNAL_MESSAGE, "retryable": True}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


async def api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.TOO_LARGE}.get(
        exc.status_code, ErrorCode.HTTP_ERROR
    )
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def unavailable(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    """Redis is away: 503 `queue_unavailable` with Retry-After; on a WebSocket, that error frame
    and close code 1013 (try again later)."""
    error = translate(exc)
    assert error is not None
    log.warning("%s: %s", conn.url.path, exc)
    if isinstance(conn, WebSocket):
        if conn.application_state is WebSocketState.CONNECTED:
            await conn.send_json(error_frame(error.code, error.message))
        await conn.close(code=1013)
        return None
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(error_body(error.code, error.message), status_code=error.status, headers=headers)


async def refused(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    """A budget or quota refused the call (429), or Redis is full (503 storage_full): said in the
    one shape; on a WebSocket, as an error frame and close code 1013 (try again later)."""
    error = translate(exc)
    if error is None:
        return await server_error(conn, exc)  # type: ignore[arg-type]
    log.info("%s refused: %s (%s)", conn.url.path, error.message, error.code)  # expected: no trace
    if isinstance(conn, WebSocket):
        if conn.application_state is WebSocketState.CONNECTED:
            await conn.send_json(error_frame(error.code, error.message))
        await conn.close(code=1013)
        return None
    headers = {"Retry-After": str(RETRY_AFTER_S * 12)} if error.status == 503 else {}
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(error_body(error.code, error.message), status_code=error.status, headers=headers)


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(ErrorCode.INTERNAL, INTERNAL_MESSAGE), status_code=500)


handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse | None]]] = {
    ApiError: api_error,
    HTTPException: http_error,
    Refusal: refused,
    redis.exceptions.ResponseError: refused,
    **dict.fromkeys(REDIS_UNAVAILABLE, unavailable),
    Exception: server_error,
}
