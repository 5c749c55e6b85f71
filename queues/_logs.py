"""Structured logs for both runtimes: one JSON object a line, carrying the session and job ids.

`log_context(session_id=..., job_id=...)` sets the ids for the code it wraps (a WebSocket
session, a turn, a job); every record logged inside carries them.
"""

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)
_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


@contextlib.contextmanager
def log_context(session_id: str | None = None, job_id: str | None = None) -> Iterator[None]:
    tokens = []
    if session_id is not None:
        tokens.append((_session, _session.set(session_id)))
    if job_id is not None:
        tokens.append((_job, _job.set(job_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        session_id = getattr(record, "session_id", None) or _session.get()
        job_id = getattr(record, "job_id", None) or _job.get()
        if session_id:
            entry["session_id"] = session_id
        if job_id:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the root logger (and so for rq, uvicorn, ours)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
