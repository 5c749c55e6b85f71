"""The one error vocabulary: every code a client of Council can get, from any layer (a worker's
job, a turn, a WebSocket frame, an HTTP call), with what it means. Web, council and workers use
these; tests/shared_schemas/test_error_codes.py finds every code the code base emits and checks
it is here, and that web/PROTOCOL.md lists them all.

A failed job comes back as a `JobError` (a code, a sentence to act on, whether to try again).
A refusal raised in the app (a budget, a quota, a queue limit, the council) is a `Refusal`: the
same three fields, so whatever a turn meets ends it with them.
"""

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict


class ErrorCode(StrEnum):
    # A job's input (not retried: the same input fails the same way).
    INVALID_PAYLOAD = "invalid_payload"
    BLOB_MISSING = "blob_missing"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNDECODABLE_AUDIO = "undecodable_audio"
    EMPTY_AUDIO = "empty_audio"
    AUDIO_TOO_LARGE = "audio_too_large"
    AUDIO_TOO_LONG = "audio_too_long"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    UNKNOWN_VOICE = "unknown_voice"
    # Around a job (may be worth another try).
    ENGINE_FAILED = "engine_failed"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker_lost"
    # Limits and budgets.
    BUDGET_EXCEEDED = "budget_exceeded"
    RATE_LIMITED = "rate_limited"
    AUDIO_QUOTA = "audio_quota"
    SERVER_BUSY = "server_busy"
    # The council.
    LLM_UNAVAILABLE = "llm_unavailable"
    COUNCIL_FAILED = "council_failed"
    COUNCIL_CONFIG = "council_config"
    INTERRUPTED = "interrupted"
    # Redis, where jobs and events live.
    QUEUE_UNAVAILABLE = "queue_unavailable"
    STORAGE_FULL = "storage_full"
    # The chat WebSocket's frames and connection.
    BAD_FRAME = "bad_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    BAD_STATE = "bad_state"
    BAD_SESSION = "bad_session"
    BAD_EVENT_ID = "bad_event_id"
    FORBIDDEN_SESSION = "forbidden_session"
    # Who may call, and from where.
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    BAD_HOST = "bad_host"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    # HTTP requests.
    BAD_REQUEST = "bad_request"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    HEADERS_TOO_LARGE = "headers_too_large"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    NO_FILES = "no_files"
    TOO_MANY_FILES = "too_many_files"
    UNKNOWN_FORMAT = "unknown_format"
    BAD_FORMAT = "bad_format"
    BAD_DAY = "bad_day"
    NOT_READY = "not_ready"
    MODEL_NOT_FOUND = "model_not_found"
    HTTP_ERROR = "http_error"
    INTERNAL = "internal"
    # A batch file's end, other than its transcript.
    CANCELED = "canceled"
    EXPIRED = "expired"


MEANING: Final[dict[ErrorCode, str]] = {
    ErrorCode.INVALID_PAYLOAD: "a job's payload or a request field is malformed, or names what the worker does not run",
    ErrorCode.BLOB_MISSING: "the uploaded audio expired from the blob store, or belongs to another session",
    ErrorCode.UNSUPPORTED_FORMAT: "the audio is in a format the worker cannot decode",
    ErrorCode.UNDECODABLE_AUDIO: "the audio's bytes are damaged or not audio",
    ErrorCode.EMPTY_AUDIO: "there is no audio (0 bytes, or shorter than 0.1 s)",
    ErrorCode.AUDIO_TOO_LARGE: "the audio is over 64 MiB",
    ErrorCode.AUDIO_TOO_LONG: "the audio decodes to more than 2 hours",
    ErrorCode.EMPTY_TEXT: "there is no text to speak",
    ErrorCode.TEXT_TOO_LONG: "the text to speak is over the limit of one request",
    ErrorCode.UNKNOWN_VOICE: "no worker speaks that voice (the message lists those that do)",
    ErrorCode.ENGINE_FAILED: "the speech engine failed on this input; try again",
    ErrorCode.TIMEOUT: "the job ran past its time limit",
    ErrorCode.WORKER_LOST: "the worker running the job (or listening) died; try again",
    ErrorCode.BUDGET_EXCEEDED: "a budget does not allow it (which one, and when it resets), or an operator froze it",
    ErrorCode.RATE_LIMITED: (
        "too many jobs queued or running for this user or session, or microphones open for this user; "
        "Retry-After says when"
    ),
    ErrorCode.AUDIO_QUOTA: "this user has stored as much audio as they may for now",
    ErrorCode.SERVER_BUSY: "the app holds as much recorded audio as it may; try again, or stream the microphone",
    ErrorCode.LLM_UNAVAILABLE: "no language model answers: start it, or run with COUNCIL_RESPONDER=echo",
    ErrorCode.COUNCIL_FAILED: "the council could not answer (every member failed, or the chair)",
    ErrorCode.COUNCIL_CONFIG: "the members file or a council setting is wrong",
    ErrorCode.INTERRUPTED: "the server restarted while it answered; ask again",
    ErrorCode.QUEUE_UNAVAILABLE: "Redis cannot be reached right now; try again (Retry-After)",
    ErrorCode.STORAGE_FULL: (
        "Redis is at its memory limit, or stored audio at its share of it: nothing was stored or queued"
    ),
    ErrorCode.BAD_FRAME: "a WebSocket frame is not JSON, of an unknown type, or has a wrong field",
    ErrorCode.FRAME_TOO_LARGE: "a text frame is over 64 KiB",
    ErrorCode.BAD_STATE: "a frame that does not fit now (audio outside a recording or stream, one opened twice)",
    ErrorCode.BAD_SESSION: "session_id is not a session id",
    ErrorCode.BAD_EVENT_ID: "last_event_id is not an event id",
    ErrorCode.FORBIDDEN_SESSION: "that session does not exist, expired, is another's, or its resume secret is wrong",
    ErrorCode.UNAUTHORIZED: "a valid API token is required",
    ErrorCode.FORBIDDEN: "this user may not do that (an operator's call)",
    ErrorCode.BAD_HOST: "the Host header names a host this server does not answer to",
    ErrorCode.FORBIDDEN_ORIGIN: "a page of another site may not open the WebSocket or change anything",
    ErrorCode.BAD_REQUEST: "not valid HTTP/1.1",
    ErrorCode.INVALID_REQUEST: "the request's body or parameters are malformed",
    ErrorCode.NOT_FOUND: "no such thing (or it is another user's)",
    ErrorCode.METHOD_NOT_ALLOWED: "that method does not apply to this path",
    ErrorCode.TOO_LARGE: "the request body is over its limit",
    ErrorCode.HEADERS_TOO_LARGE: "the request's head is over COUNCIL_MAX_HEADER_BYTES",
    ErrorCode.TOO_MANY_CONNECTIONS: (
        "the server has COUNCIL_MAX_CONNECTIONS open, or this client its share of them; try again"
    ),
    ErrorCode.NO_FILES: "a batch with no file in it",
    ErrorCode.TOO_MANY_FILES: "a batch with more files than one request may carry",
    ErrorCode.UNKNOWN_FORMAT: "a transcript format that is not json, txt, srt or vtt",
    ErrorCode.BAD_FORMAT: "an export format that is not json or csv",
    ErrorCode.BAD_DAY: "a day that is not a date like 2026-11-24",
    ErrorCode.NOT_READY: "the transcript is not done yet",
    ErrorCode.MODEL_NOT_FOUND: "an OpenAI-compatible route was asked for a model it does not have",
    ErrorCode.HTTP_ERROR: "another HTTP error (its status says which)",
    ErrorCode.INTERNAL: "a bug on the server's side; try again",
    ErrorCode.CANCELED: "the batch file's job was cancelled",
    ErrorCode.EXPIRED: "the batch file's job and result expired",
}

# Codes worth another attempt: the input was fine, something around it was not (a limit that
# passes, a service that comes back). The one source of `retryable`, for a job's error and a
# refusal alike.
RETRYABLE: Final = frozenset(
    {
        ErrorCode.ENGINE_FAILED,
        ErrorCode.TIMEOUT,
        ErrorCode.WORKER_LOST,
        ErrorCode.RATE_LIMITED,
        ErrorCode.AUDIO_QUOTA,
        ErrorCode.SERVER_BUSY,
        ErrorCode.LLM_UNAVAILABLE,
        ErrorCode.COUNCIL_FAILED,
        ErrorCode.INTERRUPTED,
        ErrorCode.QUEUE_UNAVAILABLE,
        ErrorCode.STORAGE_FULL,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.INTERNAL,
    }
)
# How long to wait before trying again, where the server can say (HTTP's Retry-After).
RETRY_AFTER_S: Final[dict[ErrorCode, int]] = {
    ErrorCode.RATE_LIMITED: 5,  # some of the jobs waiting have run by then
    ErrorCode.QUEUE_UNAVAILABLE: 5,  # Redis restarting
    ErrorCode.LLM_UNAVAILABLE: 10,
    ErrorCode.STORAGE_FULL: 60,  # stored audio expires, or an operator raises maxmemory
}


class JobError(BaseModel):
    """What a user sees when a job fails: a code to branch on and a sentence to act on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: ErrorCode
    message: str
    retryable: bool = False

    @classmethod
    def of(cls, code: ErrorCode, message: str) -> "JobError":
        return cls(code=code, message=message, retryable=code in RETRYABLE)


class Refusal(Exception):
    """The one base of Council's errors, in every layer (a refusal of a request or a turn, a
    council's failure, a job's, an HTTP route's): a `code` of the vocabulary, a `message` to act
    on, whether trying again may help (`retryable`, from the code: `RETRYABLE`) and the HTTP
    `status` that says it. Subclasses set `code` and `status` (as class attributes, or in their
    `__init__` when they carry another's); each edge translates them in one place: web/errors.py
    (HTTP and the WebSocket), web/v1/errors.py (OpenAI's shape), a turn's `turn_done`. A test walks
    every subclass (tests/web/test_error_base.py)."""

    code: ErrorCode = ErrorCode.INTERNAL
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE

    @property
    def retry_after_s(self) -> int | None:
        return RETRY_AFTER_S.get(self.code)

    def as_error(self) -> dict[str, str | bool]:
        """The error a turn ends with (`turn_done`), a job fails with (`JobError`'s fields)."""
        return {"code": str(self.code), "message": self.message, "retryable": self.retryable}
