"""Where a job stands: its RQ status, progress, result or error, as one plain model."""

from typing import Any, Literal

import redis
from pydantic import BaseModel
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from shared_schemas import JobError

from ._rq import in_thread

State = Literal["queued", "started", "finished", "failed", "canceled", "deferred", "scheduled", "stopped", "unknown"]


class JobStatus(BaseModel):
    job_id: str
    state: State
    progress: float | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None


def job_status(connection: redis.Redis, job_id: str) -> JobStatus:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return JobStatus(job_id=job_id, state="unknown")
    state = job.get_status(refresh=False)
    meta = job.meta or {}
    error = JobError.model_validate(meta["error"]) if meta.get("error") else None
    result = job.return_value(refresh=False) if state == "finished" else None
    return JobStatus(
        job_id=job_id,
        state=state.value if state is not None else "unknown",
        progress=meta.get("progress"),
        result=result if isinstance(result, dict) else None,
        error=error,
    )


async def ajob_status(connection: redis.Redis, job_id: str) -> JobStatus:
    return await in_thread(job_status, connection, job_id)


def live_workers(connection: redis.Redis, queue: str) -> int:
    """How many live workers serve `queue` (RQ's registry: a worker that died leaves it once its
    key expires; `Worker.count` would still count it)."""
    return len(Worker.all(connection=connection, queue=Queue(queue, connection=connection, serializer=JSONSerializer)))
