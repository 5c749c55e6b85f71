"""Server-sent events as OpenAI streams them: one `data: <json>` line per event, a blank line
after each, no `event:` field (the JSON carries its own `type` or `object`).

A stream that fails after it began cannot change its status any more: it ends with an
`{"error": {...}}` event in OpenAI's shape, which the openai SDKs raise as an APIError.
"""

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import StreamingResponse

DONE = b"data: [DONE]\n\n"


def event(data: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def comment(text: str) -> bytes:
    """A line clients ignore: keeps a proxy from closing a quiet stream, and says why it is quiet."""
    return f": {text}\n\n".encode()


def response(body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> StreamingResponse:
    # No caching, and no buffering by a proxy in front (nginx reads X-Accel-Buffering).
    fixed = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
    return StreamingResponse(body, media_type="text/event-stream", headers=fixed)
