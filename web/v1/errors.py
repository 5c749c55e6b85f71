"""OpenAI's error shape on the /v1 routes: `{"error": {"message", "type", "param", "code"}}`.

The rest of the app answers `{"error": {"code", "message"}}` (web/errors.py); OpenAI's clients
read `message` from either, but branch on `type` and `param`, so what the /v1 handlers raise is
said in OpenAI's shape here (`openai_error`: any `shared_schemas.Refusal`), with our own `code`
(budget_exceeded, unknown_voice, ...) kept.

Three answers keep the app's shape, because they are given before or around these handlers, and
web/openapi.py documents them so: 401 (web.auth's TokenAuth answers before any route), 400
`bad_host` and 403 `forbidden_origin` (web.sitecheck), and 503 `queue_unavailable` or
`storage_full` raised by Redis itself (away or full: web.errors' handlers, with Retry-After).
"""

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared_schemas import ErrorCode, Refusal

log = logging.getLogger(__name__)

INVALID = "invalid_request_error"
SERVER = "server_error"
QUOTA = "insufficient_quota"
RATE = "rate_limit_error"

# A worker's failure codes that the input caused (the client must change the request), and the
# request field each is about (invalid_payload: the worker refused a setting, its message says which).
_INPUT_CODES: dict[str, str | None] = {
    ErrorCode.INVALID_PAYLOAD: None,
    ErrorCode.UNSUPPORTED_FORMAT: "file",
    ErrorCode.UNDECODABLE_AUDIO: "file",
    ErrorCode.EMPTY_AUDIO: "file",
    ErrorCode.AUDIO_TOO_LARGE: "file",
    ErrorCode.AUDIO_TOO_LONG: "file",
    ErrorCode.EMPTY_TEXT: "input",
    ErrorCode.TEXT_TOO_LONG: "input",
    ErrorCode.UNKNOWN_VOICE: "voice",
}
_STATUS_OF_CODE: dict[str, int] = {ErrorCode.TIMEOUT: 504, ErrorCode.WORKER_LOST: 503, ErrorCode.BLOB_MISSING: 502}
_TYPE_OF_STATUS = {401: "authentication_error", 403: "permission_error", 404: INVALID, 429: RATE}


class OpenAIError(Refusal):
    """An answer of a /v1 route that is not a success, in OpenAI's shape (a `Refusal` like any
    other: outside the /v1 routes it would answer in the app's shape)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type: str | None = None,  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = ErrorCode(code)
        self.type = type or _TYPE_OF_STATUS.get(status, SERVER if status >= 500 else INVALID)
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, Any]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.status < 500 and self.type != RATE:
            # The openai SDKs retry 429 and 5xx by themselves; a refused budget stays refused
            # however often it is sent, as does a bad request. Too many jobs waiting passes.
            headers.setdefault("x-should-retry", "false")
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def invalid(message: str, param: str | None = None, code: str = "invalid_request") -> OpenAIError:
    """400: the request itself must change; `param` names the field."""
    return OpenAIError(400, message, code=code, param=param)


def openai_error(exc: Refusal, param: str | None = None) -> OpenAIError:
    """Any refusal of the app in OpenAI's shape: its status (422 is OpenAI's 400), its code, and
    the `type` OpenAI's clients branch on (a budget is `insufficient_quota`, which they do not
    retry; too many jobs waiting `rate_limit_error`, which they do), with Retry-After where the
    code has one. The /v1 edge's one translation: `answered` and the streamed answers use it."""
    if isinstance(exc, OpenAIError):
        return exc
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else {}
    status = 400 if exc.status == 422 else exc.status
    kind = QUOTA if exc.code == ErrorCode.BUDGET_EXCEEDED else None
    return OpenAIError(status, exc.message, code=exc.code, type=kind, param=param, headers=headers)


def from_job(error: Mapping[str, Any]) -> OpenAIError:
    """A worker's failed job (its `JobError`): the input's fault is 400 naming the field; a budget
    frozen after the job was reserved 429; the rest the server's (5xx)."""
    code, message = str(error.get("code", ErrorCode.ENGINE_FAILED)), str(error.get("message", "The job failed."))
    if code in _INPUT_CODES:
        return OpenAIError(400, message, code=code, param=_INPUT_CODES[code])
    if code == ErrorCode.BUDGET_EXCEEDED:
        return OpenAIError(429, message, code=code, type=QUOTA)
    return OpenAIError(_STATUS_OF_CODE.get(code, 500), message, code=code)


Endpoint = Callable[[Request], Awaitable[Response]]


def answered(endpoint: Endpoint) -> Endpoint:
    """`endpoint` with its errors in OpenAI's shape. Redis' own errors pass on to the app's
    handlers (503 with Retry-After, in the app's shape: see the module's docstring)."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Refusal as exc:
            if not isinstance(exc, OpenAIError):  # a route's own answer is not news
                log.info("%s refused: %s (%s)", request.url.path, exc.message, exc.code)
            return openai_error(exc).response()

    return wrapped
