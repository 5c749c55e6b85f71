"""The OpenAPI 3.1 description of the REST API (batch transcription, speech, health).

Written out as data: it is the contract clients read, kept beside the routes it describes, and
served at `GET /openapi.json`. The chat WebSocket is described in PROTOCOL.md.
"""

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared_schemas import AUDIO_FORMATS, MAX_AUDIO_BYTES, MAX_TEXT_CHARS

from .batch import MAX_FILES
from .transcripts import FORMATS, MEDIA_TYPES


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
        "required": ["text", "voice"],
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS},
            "voice": {"type": "string", "description": "A voice the workers serve (see /health)."},
        },
    },
}

_BATCH_PATH = [
    {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}},
]
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

PATHS: Final[dict[str, Any]] = {
    "/health": {
        "get": {
            "summary": "Whether Redis answers and a worker serves the realtime queue; voices and queue depths",
            "responses": {"200": _json("Ready", {"type": "object"}), "503": _json("Not ready", {"type": "object"})},
        }
    },
    "/api/transcriptions": {
        "post": {
            "summary": "Upload audio files to transcribe in the background",
            "description": (
                f"Files in the multipart field `files` ({', '.join(AUDIO_FORMATS)}), at most {MAX_FILES} per request "
                f"and {MAX_AUDIO_BYTES // 2**20} MiB each. An empty file is listed as failed (`empty_audio`) "
                "and not enqueued; a request whose files are all empty is refused. Whether a file decodes is "
                "known only once a worker tries it: its state then becomes `failed` with the reason."
            ),
            "requestBody": {"required": True, "content": _UPLOAD},
            "responses": {
                "202": _json("Accepted: one job per file", _ref("BatchCreated")),
                "400": _error("No files, too many files, all empty, or not multipart"),
                "413": _error("A file (or the whole request) is too large"),
            },
        }
    },
    "/api/transcriptions/{batch_id}": {
        "get": {
            "summary": "Where each file of a batch stands: state, progress, error or text",
            "parameters": _BATCH_PATH,
            "responses": {"200": _json("The batch", _ref("BatchStatus")), "404": _error("Unknown or expired batch")},
        }
    },
    "/api/transcriptions/{batch_id}/{job_id}": {
        "get": {
            "summary": "One file's transcript, as a download",
            "parameters": [
                *_BATCH_PATH,
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(FORMATS), "default": "json"},
                },
            ],
            "responses": {
                "200": {
                    "description": "The transcript; Content-Disposition names the file after the upload",
                    "content": {MEDIA_TYPES[f].partition(";")[0]: {"schema": {"type": "string"}} for f in FORMATS},
                },
                "400": _error("Unknown format"),
                "404": _error("Unknown batch or file, or expired"),
                "409": _error("Not finished yet: the message says its state"),
                "422": _error("The transcription failed: the job's own error code and message"),
            },
        }
    },
    "/api/speech": {
        "post": {
            "summary": "Speak text in a voice, as one WAV",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SpeechRequest")}}},
            "responses": {
                "200": {
                    "description": "The speech; X-Duration-Seconds gives its length",
                    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                },
                "400": _error("Not JSON, or fields missing or malformed"),
                "422": _error("The text cannot be spoken: empty_text, text_too_long, unknown_voice, ..."),
                "504": _error("No worker spoke it in time"),
            },
        }
    },
    "/api/usage": {
        "get": {
            "summary": "What a user (or, for operators, a member or everyone) spent on a UTC day, and the limits",
            "parameters": [
                {"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}},
                {"name": "user", "in": "query", "schema": {"type": "string"}, "description": "operators; * for all"},
                {"name": "member", "in": "query", "schema": {"type": "string"}, "description": "operators"},
            ],
            "responses": {
                "200": _json("Spent per unit, quantities, limits", {"type": "object"}),
                "400": _error("bad_day"),
                "403": _error("Another user's usage, and the caller is not an operator"),
            },
        }
    },
    "/api/usage/ledger": {
        "get": {
            "summary": "The ledger's transactions of a UTC day: every LLM call, tool call and worker job",
            "parameters": [
                {"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}},
                {"name": "user", "in": "query", "schema": {"type": "string"}},
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
            ],
            "responses": {
                "200": {
                    "description": "The transactions",
                    "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {}},
                },
                "400": _error("bad_day or bad_format"),
                "403": _error("Another user's ledger, and the caller is not an operator"),
            },
        }
    },
}

SPEC: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {"title": "Council", "version": "1", "description": "Batch transcription and speech for Council."},
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "COUNCIL_API_TOKEN or a user's token from COUNCIL_API_TOKENS. Another user's "
                "batches and audio answer 404, as if they did not exist.",
            }
        },
    },
    "security": [{}, {"bearer": []}],
    "paths": PATHS,
}


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(SPEC)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
