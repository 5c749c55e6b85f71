"""The REST API, health, metrics and the pages: every route outside /v1."""

from typing import Any, Final

from shared_schemas import AUDIO_FORMATS, MAX_AUDIO_BYTES

from ..audio import NAME
from ..batch import MAX_FILES
from ..sessions import SESSION_ID
from ..speech import MAX_BODY_BYTES
from ..transcripts import FORMATS, MEDIA_TYPES
from .parts import _BATCH_ID, _JOB_ID, _UPLOAD, _WAV, _error, _json, _operation, _page, _path_param, _ref

REST_PATHS: Final[dict[str, Any]] = {
    "/": _page("The chat page"),
    "/batch": _page("The batch transcription page"),
    "/docs": _page("Swagger UI over this document (its files from the swagger-ui-py package, no CDN)"),
    "/openapi.json": {
        "get": _operation("This document", {"200": _json("OpenAPI 3.1", {"type": "object"})}, public=True, redis=False)
    },
    "/health": {
        "get": _operation(
            "Whether Redis answers and a worker serves the realtime queue; voices and queue depths",
            {
                "200": _json("Ready", {"type": "object"}),
                "503": _json(
                    "Not ready: the report says what is down (`redis`, `events`, no worker on a queue)",
                    {"type": "object"},
                ),
            },
            redis=False,
        )
    },
    "/metrics": {
        "get": _operation(
            "Prometheus metrics: jobs, latencies, queue depths and RQ's registries, sessions, spend",
            {
                "200": {
                    "description": "Prometheus' text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        )
    },
    "/api/transcriptions": {
        "post": _operation(
            "Upload audio files to transcribe in the background",
            {
                "202": _json("Accepted: one job per file, in the order sent", _ref("BatchCreated")),
                "400": _error(
                    "`invalid_request` (not multipart, malformed), `no_files`, `too_many_files`, or `empty_audio` "
                    "(every file empty)"
                ),
                "413": _error("`too_large` (the whole request) or `audio_too_large` (a file)"),
                "429": _error(
                    "`rate_limited`: you (or this session) have as many jobs waiting as may wait at once; "
                    "nothing was queued. `Retry-After` says when to try again"
                ),
            },
            description=(
                f"Files in the multipart field `files` ({', '.join(AUDIO_FORMATS)}), at most {MAX_FILES} per request "
                f"and {MAX_AUDIO_BYTES // 2**20} MiB each. An empty file is listed as failed (`empty_audio`) "
                "and not enqueued; a request whose files are all empty is refused. Whether a file decodes is "
                "known only once a worker tries it: its state then becomes `failed` with the reason."
            ),
            requestBody={"required": True, "content": _UPLOAD},
        ),
        "get": _operation(
            "Your batches, newest first, a page at a time (those not expired)",
            {
                "200": _json("A page of batches", _ref("BatchList")),
                "400": _error("`invalid_request`: `limit` not 1 to 50, or `before` not a `next` of this list"),
            },
            parameters=[
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50}},
                {
                    "name": "before",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "The `next` of the page before: batches older than those",
                },
            ],
        ),
    },
    "/api/transcriptions/{batch_id}/archive": {
        "get": _operation(
            "Every finished transcript of a batch in one zip, named after the uploads (memo.mp3.srt)",
            {
                "200": {"description": "The zip", "content": {"application/zip": {}}},
                "400": _error("`unknown_format`"),
                "404": _error("`not_found`: unknown or expired batch, or another user's"),
                "409": _error("`not_ready`: no file of the batch has finished yet"),
            },
            parameters=[
                _BATCH_ID,
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(FORMATS), "default": "srt"},
                },
            ],
        )
    },
    "/api/transcriptions/{batch_id}": {
        "get": _operation(
            "Where each file of a batch stands: state, progress, error or text",
            {
                "200": _json("The batch", _ref("BatchStatus")),
                "404": _error("`not_found`: unknown or expired batch, or another user's"),
            },
            parameters=[_BATCH_ID],
        ),
        "delete": _operation(
            "Cancel a batch: waiting files at once, a running one at the end of its current piece",
            {
                "200": _json("Every file has ended or will not run", _ref("BatchCancelled")),
                "202": _json(
                    "A file is still stopping; the batch's status then says `failed`, code `canceled`",
                    _ref("BatchCancelled"),
                ),
                "404": _error("`not_found`: unknown or expired batch, or another user's"),
            },
            parameters=[_BATCH_ID],
        ),
    },
    "/api/transcriptions/{batch_id}/{job_id}": {
        "get": _operation(
            "One file's transcript, as a download",
            {
                "200": {
                    "description": "The transcript; Content-Disposition names the file after the upload",
                    "content": {MEDIA_TYPES[f].partition(";")[0]: {"schema": {"type": "string"}} for f in FORMATS},
                },
                "400": _error("`unknown_format`"),
                "404": _error("`not_found`: unknown batch or file, expired, or another user's"),
                "409": _error("`not_ready`: not finished yet; the message says its state"),
                "422": _error("The transcription failed: the job's own error code and message"),
            },
            parameters=[
                _BATCH_ID,
                _JOB_ID,
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(FORMATS), "default": "json"},
                },
            ],
        ),
        "delete": _operation(
            "Cancel one file: at once if it waits, at the end of its current piece if it runs",
            {
                "200": _json("It has ended or will not run", _ref("BatchCancelled")),
                "202": _json("It is stopping; its state then says `failed`, code `canceled`", _ref("BatchCancelled")),
                "404": _error("`not_found`: unknown batch or file, expired, or another user's"),
            },
            parameters=[_BATCH_ID, _JOB_ID],
        ),
    },
    "/api/speech": {
        "post": _operation(
            "Speak text in a voice, as one WAV",
            {
                "200": {"description": "The speech; X-Duration-Seconds gives its length", "content": _WAV},
                "400": _error("`invalid_request`: not JSON, or fields missing or malformed"),
                "413": _error(f"`too_large`: the body is over {MAX_BODY_BYTES // 1024} KiB"),
                "422": _error("The text cannot be spoken: empty_text, text_too_long, unknown_voice, ..."),
                "502": _error("`blob_missing` or `engine_failed`: the worker's audio could not be read or joined"),
                "504": _error("`timeout`: no worker spoke it in time"),
            },
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _ref("SpeechRequest"),
                        "example": {"text": "The council has decided.", "voice": "max"},
                    }
                },
            },
        )
    },
    "/api/audio/{session_id}/{name}": {
        "get": _operation(
            "A synthesized sentence of a chat session (its URL comes in the session's `audio` events)",
            {
                "200": {"description": "The clip", "content": _WAV},
                "404": _error("`not_found`: expired, never made, or another user's session"),
            },
            description="An <audio> element cannot send headers: pass the token as `?token=` instead.",
            parameters=[
                _path_param("session_id", SESSION_ID.pattern, "s3ss10n-1d"),
                _path_param("name", NAME.pattern, "Zk3n9QpX2bLm.wav"),
            ],
        )
    },
    "/api/usage": {
        "get": _operation(
            "What a user (or, for operators, a member or everyone) spent on a UTC day, and the limits",
            {
                "200": _json("Spent per unit, quantities, limits", {"type": "object"}),
                "400": _error("`bad_day`"),
                "403": _error("`forbidden`: another user's usage, and the caller is not an operator"),
            },
            parameters=[
                {"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}},
                {"name": "user", "in": "query", "schema": {"type": "string"}, "description": "operators; * for all"},
                {"name": "member", "in": "query", "schema": {"type": "string"}, "description": "operators"},
            ],
        )
    },
    "/api/usage/ledger": {
        "get": _operation(
            "The ledger's transactions of a UTC day: every LLM call, tool call and worker job",
            {
                "200": {
                    "description": "The transactions",
                    "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {}},
                },
                "400": _error("`bad_day` or `bad_format`"),
                "403": _error("`forbidden`: another user's ledger, and the caller is not an operator"),
            },
            parameters=[
                {"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}},
                {"name": "user", "in": "query", "schema": {"type": "string"}},
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
            ],
        )
    },
}
