"""The OpenAPI 3.1 description of every HTTP route of the app: the REST API (batch
transcription, speech, audio clips, usage), health, metrics and the pages.

Written out as data: it is the contract clients read, kept beside the routes it describes, and
served at `GET /openapi.json`. Every operation lists its errors, all in the one error shape
(web/errors.py): 401 where web.auth asks for a token, 503 `queue_unavailable` where the route
needs Redis, 500 for a bug, and its own 4xx. tests/web/test_openapi.py walks the app's routes and
calls each one to keep this true. The chat WebSocket is described in PROTOCOL.md.
"""

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared_schemas import AUDIO_FORMATS, MAX_AUDIO_BYTES, MAX_TEXT_CHARS

from .audio import NAME
from .batch import BATCH_ID, MAX_FILES
from .errors import RETRY_AFTER_S
from .sessions import SESSION_ID
from .speech import MAX_BODY_BYTES
from .transcripts import FORMATS, MEDIA_TYPES
from .v1 import chat as v1_chat
from .v1 import encoder as v1_encoder
from .v1 import speech as v1_speech
from .v1 import transcriptions as v1_transcriptions


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"}
_STATE = {"type": "string", "enum": ["queued", "started", "finished", "failed"]}
_FILE = {
    "type": "object",
    "required": ["job_id", "filename", "state", "result_url"],
    "properties": {
        "job_id": _ID,
        "filename": {"type": "string"},
        "state": _STATE,
        "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "error": _ref("JobError"),
        "text": {"type": "string", "description": "The transcript's text, once finished."},
        "result_url": {"type": "string"},
    },
}
_TOTALS = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in ("files", "queued", "started", "finished", "failed")},
}

SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _ref("JobError")},
    },
    "JobError": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "examples": ["empty_audio", "undecodable_audio", "unknown_voice"]},
            "message": {"type": "string", "description": "A sentence a person can act on."},
            "type": {
                "type": "string",
                "description": "/v1 routes only (OpenAI's shape): invalid_request_error, insufficient_quota, "
                "server_error, ...",
            },
            "param": {"type": ["string", "null"], "description": "/v1 routes only: the request field at fault."},
        },
    },
    "BatchFile": _FILE,
    "BatchCreated": {
        "type": "object",
        "required": ["batch_id", "status_url", "jobs"],
        "properties": {
            "batch_id": {"type": "string"},
            "status_url": {"type": "string"},
            "jobs": {"type": "array", "items": _ref("BatchFile")},
        },
    },
    "BatchCancelled": {
        "type": "object",
        "required": ["batch_id", "status_url", "files"],
        "properties": {
            "batch_id": {"type": "string"},
            "status_url": {"type": "string"},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["job_id", "filename", "cancel"],
                    "properties": {
                        "job_id": _ID,
                        "filename": {"type": "string"},
                        "cancel": {
                            "type": "string",
                            "enum": ["canceled", "stopping", "ended", "unknown"],
                            "description": "`canceled`: it was waiting and will not run; `stopping`: it is being "
                            "transcribed and stops at the end of its current piece; `ended`: it had ended",
                        },
                    },
                },
            },
        },
    },
    "BatchStatus": {
        "type": "object",
        "required": ["batch_id", "created_at", "done", "totals", "files"],
        "properties": {
            "batch_id": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "done": {"type": "boolean", "description": "Every file finished or failed."},
            "totals": _TOTALS,
            "files": {"type": "array", "items": _ref("BatchFile")},
        },
    },
    "SpeechRequest": {
        "type": "object",
        "examples": [{"text": "The council has decided.", "voice": "max"}],
        "required": ["text", "voice"],
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS},
            "voice": {"type": "string", "description": "A voice the workers serve (see /health)."},
        },
    },
}

_UNAUTHORIZED = {
    **_error(
        "`unauthorized`: the app has tokens (COUNCIL_API_TOKEN, COUNCIL_API_TOKENS) and the call carries "
        "none, or a wrong one"
    ),
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="council"'}},
}
_UNAVAILABLE = {
    **_error("`queue_unavailable`: Redis (the job queue) cannot be reached, so nothing was queued or read"),
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": f"Seconds to wait: {RETRY_AFTER_S}"}},
}
_INTERNAL = _error("`internal`: a bug on our side; the server's log has the details")


def _operation(
    summary: str, responses: dict[str, Any], *, public: bool = False, redis: bool = True, **fields: Any
) -> dict[str, Any]:
    """One operation with the errors every route shares: 401 unless the route is public
    (web.auth.PUBLIC), 503 when it needs Redis, 500."""
    shared = {"401": _UNAUTHORIZED} if not public else {}
    if redis:
        shared["503"] = _UNAVAILABLE
    merged = {**responses, **shared, "500": _INTERNAL}
    op = {"summary": summary, **fields, "responses": dict(sorted(merged.items()))}
    if public:
        op["security"] = [{}]
    return op


def _path_param(name: str, pattern: str, example: str, description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}
    return {**param, "example": example, **({"description": description} if description else {})}


def _page(summary: str) -> dict[str, Any]:
    html = {"200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}}
    return {"get": _operation(summary, html, public=True, redis=False)}


_BATCH_ID = _path_param("batch_id", BATCH_ID.pattern, "0123456789abcdef0123456789abcdef")
_JOB_ID = _path_param(
    "job_id", r"^[0-9a-f]{32}-\d{3}$", "0123456789abcdef0123456789abcdef-000", "From the batch's `jobs` or `files`"
)
_UPLOAD = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {"type": "array", "maxItems": MAX_FILES, "items": {"type": "string", "format": "binary"}}
            },
        },
    }
}
_WAV = {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}

PATHS: Final[dict[str, Any]] = {
    "/": _page("The chat page"),
    "/batch": _page("The batch transcription page"),
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

# web.sitecheck answers before any route: a Host the app does not answer, on every operation; a
# page of another site, on the methods a form or a no-cors fetch can send.
_BAD_HOST = "`bad_host`: the Host header names a host the app does not answer (COUNCIL_ALLOWED_HOSTS)"
_FORBIDDEN_ORIGIN = (
    "`forbidden_origin`: sent by a page of another site (Origin or Sec-Fetch-Site) without an "
    "Authorization header (COUNCIL_ALLOWED_ORIGINS)"
)


def _add_error(op: dict[str, Any], status: str, description: str) -> None:
    responses = op["responses"]
    if status in responses:
        responses[status] = {**responses[status], "description": f"{responses[status]['description']}; {description}"}
    else:
        responses[status] = _error(description)
    op["responses"] = dict(sorted(responses.items()))


def _add_site_check(paths: dict[str, Any]) -> None:
    for item in paths.values():
        for method, op in item.items():
            _add_error(op, "400", _BAD_HOST)
            if method in ("post", "put", "patch", "delete"):
                _add_error(op, "403", _FORBIDDEN_ORIGIN)


# The OpenAI-compatible routes (web/v1). Their own errors are in OpenAI's shape, the one shape
# plus `type` and `param`; 401, 503 queue_unavailable and the site check's answer as every route.
_V1_PAGE = " See web/v1 and the README's OpenAI-compatible API."
_V1_BUDGET = _error("`budget_exceeded` (type insufficient_quota): the user is frozen or their budget is spent")
_V1_JOBS_REFUSED = _error(
    "`budget_exceeded` (type insufficient_quota): the user is frozen or their budget is spent; `rate_limited` "
    "(type rate_limit_error, with Retry-After): as many of the user's jobs wait as may"
)
_V1_TIMEOUT = _error("`timeout`: no worker finished in time (a job not started is cancelled)")
_V1_MODEL = _error("`model_not_found`: GET /v1/models lists the models")
_V1_STREAM = {"text/event-stream": {"schema": {"type": "string"}}}
V1_PATHS: Final[dict[str, Any]] = {
    "/v1/models": {
        "get": _operation(
            "OpenAI's model list: council, council-fast, the STT models and the speech models with their voices",
            {
                "200": _json(
                    "`{object: list, data: [...]}`; voices in each speech model's `council_voices`", {"type": "object"}
                )
            },
            description="Voices are those the workers announced." + _V1_PAGE,
        )
    },
    "/v1/models/{model}": {
        "get": _operation(
            "One model of the list",
            {"200": _json("The model", {"type": "object"}), "404": _V1_MODEL},
            parameters=[_path_param("model", "^.+$", "council")],
        )
    },
    "/v1/audio/transcriptions": {
        "post": _operation(
            "OpenAI's transcription: one file, on the realtime queue",
            {
                "200": {
                    "description": "The transcript as `response_format` asks; with stream=true, transcript.text "
                    "events. X-Council-Engine names the STT engine",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        **{
                            MEDIA_TYPES[f].partition(";")[0]: {"schema": {"type": "string"}}
                            for f in ("txt", "srt", "vtt")
                        },
                        **_V1_STREAM,
                    },
                },
                "400": _error(
                    "`invalid_request` (a field missing, malformed or unknown; `param` names it), `empty_audio`, "
                    "`undecodable_audio`, `audio_too_long`, ... (the worker's word on the audio)"
                ),
                "404": _V1_MODEL,
                "413": _error("`audio_too_large`, `too_large`"),
                "429": _V1_JOBS_REFUSED,
                "502": _error("`blob_missing`: the audio expired before a worker read it"),
                "504": _V1_TIMEOUT,
            },
            description=(
                f"Fields: {', '.join(sorted(v1_transcriptions.FIELDS))}; response_format "
                f"{', '.join(v1_transcriptions.FORMATS)}. `prompt` and `temperature` are accepted and not used."
                + _V1_PAGE
            ),
            requestBody={
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file", "model"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "model": {"type": "string", "examples": ["whisper-1"]},
                                "language": {"type": "string", "examples": ["en"]},
                                "response_format": {"type": "string", "enum": list(v1_transcriptions.FORMATS)},
                                "timestamp_granularities[]": {
                                    "type": "array",
                                    "items": {"type": "string", "enum": list(v1_transcriptions.GRANULARITIES)},
                                },
                                "stream": {"type": "boolean"},
                            },
                        }
                    }
                },
            },
        )
    },
    "/v1/audio/speech": {
        "post": _operation(
            "OpenAI's text to speech: our voices, streamed as each sentence is spoken",
            {
                "200": {
                    "description": "The speech (chunked, but for wav); X-Sample-Rate: the samples' rate (pcm is "
                    "16-bit little-endian mono at it)",
                    "content": {v1_encoder.MEDIA_TYPES[f].partition(";")[0]: {} for f in v1_encoder.MEDIA_TYPES},
                },
                "400": _error(
                    "`invalid_request` (`param` names the field: speed out of 0.25-4.0, a format, ...), "
                    "`unknown_voice`, `empty_text`, `text_too_long`"
                ),
                "404": _V1_MODEL,
                "413": _error(f"`too_large`: the body is over {v1_speech.MAX_BODY_BYTES // 1024} KiB"),
                "429": _V1_JOBS_REFUSED,
                "500": _error("`engine_failed`: ffmpeg could not encode the speech"),
                "502": _error("`blob_missing` or `engine_failed`: the worker's audio could not be read"),
                "504": _V1_TIMEOUT,
            },
            description=f"Input up to {v1_speech.MAX_INPUT_CHARS} characters." + _V1_PAGE,
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["model", "input", "voice"],
                            "properties": {
                                "model": {"type": "string", "examples": ["tts-1"]},
                                "input": {"type": "string", "maxLength": v1_speech.MAX_INPUT_CHARS},
                                "voice": {"type": "string", "examples": ["max"]},
                                "response_format": {"type": "string", "enum": list(v1_encoder.MEDIA_TYPES)},
                                "speed": {"type": "number", "minimum": 0.25, "maximum": 4.0, "default": 1.0},
                            },
                        },
                        "example": {"model": "tts-1", "input": "The council has decided.", "voice": "max"},
                    }
                },
            },
        )
    },
    "/v1/chat/completions": {
        "post": _operation(
            "OpenAI's chat completion, answered by the council; members' steps in `council_steps`",
            {
                "200": {
                    "description": "A chat.completion, or with stream=true chat.completion.chunk events and [DONE]",
                    "content": {"application/json": {"schema": {"type": "object"}}, **_V1_STREAM},
                },
                "400": _error("`invalid_request`: a field missing, malformed or not supported; `param` names it"),
                "404": _V1_MODEL,
                "413": _error(f"`too_large`: the body is over {v1_chat.MAX_BODY_BYTES // 1024} KiB"),
                "429": _V1_BUDGET,
                "502": _error("`council_failed`: no member could answer"),
            },
            description="Models: council, council-fast." + _V1_PAGE,
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "required": ["model", "messages"]},
                        "example": {"model": "council", "messages": [{"role": "user", "content": "Should we wait?"}]},
                    }
                },
            },
        )
    },
}
_add_error(V1_PATHS["/v1/chat/completions"]["post"], "503", "`llm_unavailable`: no LLM server answers (Retry-After)")
_add_error(V1_PATHS["/v1/audio/transcriptions"]["post"], "503", "`worker_lost`: the worker died with the job")
PATHS.update(V1_PATHS)


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
