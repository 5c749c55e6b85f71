"""The failure taxonomy: every failed job comes back as a `JobError` with one of these codes."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ErrorCode(StrEnum):
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
    ENGINE_FAILED = "engine_failed"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker_lost"
    BUDGET_EXCEEDED = "budget_exceeded"


# Codes worth another attempt: the input was fine, something around it was not.
RETRYABLE = frozenset({ErrorCode.ENGINE_FAILED, ErrorCode.TIMEOUT, ErrorCode.WORKER_LOST})


class JobError(BaseModel):
    """What a user sees when a job fails: a code to branch on and a sentence to act on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: ErrorCode
    message: str
    retryable: bool = False

    @classmethod
    def of(cls, code: ErrorCode, message: str) -> "JobError":
        return cls(code=code, message=message, retryable=code in RETRYABLE)
