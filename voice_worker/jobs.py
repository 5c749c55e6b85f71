"""The job functions RQ runs, by these names (see `queues.functions`).

Each takes the payload dict the app enqueued, runs with the context the worker built at start,
reports through events and returns a plain dict. Failures raise; the worker turns them into a
`failed` event and RQ's failed status (see `worker.py`).
"""

from typing import Any

from rq import get_current_job

from shared_schemas import EventType, PingJob, SynthesisJob, TranscriptionJob

from . import synthesis, transcription
from .context import current
from .engines import Engines


def ping(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = current()
    job = PingJob.model_validate(payload)
    ctx.events_for(job.session_id, job.job_id).emit(EventType.PONG, {})
    return {"kind": "pong"}


def transcribe(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = current()
    job = TranscriptionJob.model_validate(payload)
    events = ctx.events_for(job.session_id, job.job_id)
    result = transcription.transcribe(job, _engines(), ctx.blobs, events, _save_progress)
    body = result.model_dump(mode="json")
    events.emit(EventType.TRANSCRIPT, body)
    return body


def synthesize(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = current()
    job = SynthesisJob.model_validate(payload)
    events = ctx.events_for(job.session_id, job.job_id)
    return synthesis.synthesize(job, _engines(), ctx.blobs, events).model_dump(mode="json")


def _save_progress(fraction: float) -> None:
    """Progress where RQ keeps job data, for status pages and rq-dashboard."""
    job = get_current_job()
    if job is not None:
        job.meta["progress"] = round(fraction, 3)
        job.save_meta()


def _engines() -> Engines:
    engines = current().engines
    if engines is None:
        raise RuntimeError("this worker was started without engines")
    return engines
