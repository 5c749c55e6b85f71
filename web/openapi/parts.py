"""The pieces every operation is built from: the error shape, the schemas, the site check's answers."""

from typing import Any, Final

from shared_schemas import MAX_TEXT_CHARS, RETRY_AFTER_S, ErrorCode

from ..batch import BATCH_ID, MAX_FILES


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
        "no_speech": {"type": "boolean", "description": "Finished, and nobody speaks in the file (the text is empty)."},
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
    "BatchList": {
        "type": "object",
        "required": ["batches", "next"],
        "properties": {
            "batches": {
                "type": "array",
                "description": "Newest first; each a BatchStatus with the files' names in upload order.",
                "items": _ref("BatchStatus"),
            },
            "next": {
                "type": ["string", "null"],
                "description": "Pass as `before` for the next (older) page; null on the last page.",
            },
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
_WAIT_S = RETRY_AFTER_S[ErrorCode.QUEUE_UNAVAILABLE]
_UNAVAILABLE = {
    **_error("`queue_unavailable`: Redis (the job queue) cannot be reached, so nothing was queued or read"),
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": f"Seconds to wait: {_WAIT_S}"}},
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
