"""The voice worker: a non-forking RQ worker that loads its engines once and serves jobs with them."""

import logging
import sys
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import announce_voices
from queues.logs import log_context
from shared_schemas import EventType

from .context import WorkerContext, install
from .engines import Engines
from .errors import job_error
from .lean import LeanSimpleWorker
from .settings import WorkerSettings

log = logging.getLogger(__name__)


class VoiceWorker(LeanSimpleWorker):
    """Serves `realtime` before `batch` with engines loaded once, in this process.

    A failed job comes back to its session as a `failed` event carrying a `JobError`, once: when
    it will not be retried. Errors caused by the input (bad audio, unknown voice) are not retried.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        engines: Engines | None,
        connection: redis.Redis | None = None,
        **kwargs: Any,
    ) -> None:
        connection = connection if connection is not None else settings.queues.connect()
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in settings.queues.queue_names]
        super().__init__(queues, connection=connection, serializer=JSONSerializer, name=settings.name, **kwargs)
        self.context = WorkerContext.build(settings, connection, engines)
        install(self.context)

    def execute_job(self, job: Job, queue: Queue) -> None:
        session_id = job.meta.get("session_id")
        with log_context(session_id=session_id if isinstance(session_id, str) else None, job_id=job.id):
            super().execute_job(job, queue)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        error = job_error(exc_info[1])
        if not error.retryable:
            job.retries_left = 0
        job.meta["error"] = error.model_dump(mode="json")
        job.save_meta()
        super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        final = not job.should_retry
        super().handle_job_failure(job, queue, *args, **kwargs)
        # After RQ has recorded the failure: whoever gets the event and asks RQ sees it failed.
        if final:
            self._tell_failure(job)

    def _tell_failure(self, job: Job) -> None:
        session_id = job.meta.get("session_id")
        error = job.meta.get("error") or job_error(RuntimeError("the job failed")).model_dump(mode="json")
        if isinstance(session_id, str):
            self.context.events_for(session_id, job.id).emit(EventType.FAILED, error)
        else:
            log.error("job %s failed with no session to tell: %s", job.id, error["message"])

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        engines = self.context.engines
        if engines is not None:
            voices = {name: f"{engine.name}: {engine.voices[name]}" for name, engine in engines.voices.items()}
            announce_voices(self.connection, self.context.settings.queues, voices)
        # A line for people and scripts waiting on the worker (make run, tests, benchmarks).
        print(f"worker ready: {self.name} on {', '.join(self.queue_names())}", file=sys.stderr, flush=True)
