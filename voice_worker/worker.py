"""The voice worker: a non-forking RQ worker that loads its engines once and serves jobs with them."""

import logging
import sys
import time
import uuid
from typing import Any

import redis
from pydantic import ValidationError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from queues import FairShare, announce_voices, as_text, functions, log_context
from shared_schemas import ErrorCode, GenerationJob, TranscriptionJob, payloads

from . import transcription
from .context import Prefetched, WorkerContext, install
from .engines import Engines
from .errors import job_error
from .guarded import GuardedJob
from .heartbeat import Heartbeat
from .inflight import Inflight, events_stream
from .lean import LeanSimpleWorker
from .listening.pool import Listeners
from .outage import REDIS_DOWN_OR_FULL
from .settings import WorkerSettings

log = logging.getLogger(__name__)


CANCELLED = "The transcription was cancelled; what was heard before it stopped is not kept."


class VoiceWorker(LeanSimpleWorker):
    """Serves `speech` and `realtime` before `batch` with engines loaded once, in this process.

    A failed job comes back to its session as a `failed` event carrying a `JobError`, once: when
    it will not be retried. Errors caused by the input (bad audio, unknown voice) are not retried,
    nor timeouts (the same work would take as long again). Jobs go through this worker's in-flight
    list and a heartbeat thread watches the other workers (see `inflight.py`); `adopt` names a
    dead predecessor whose list this worker takes over.

    A long transcription that pauses between two pieces (`transcription.Paused`) goes back to the
    front of its queue and of its user's lane, in the transaction that ends this run, status
    `queued` again: the same RQ job, run on from its saved pieces. One that was cancelled ends
    `canceled` (RQ's status and registry) with a `failed` event whose code is `canceled`.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        engines: Engines | None,
        connection: redis.Redis | None = None,
        report_fd: int | None = None,
        adopt: str | None = None,
        **kwargs: Any,
    ) -> None:
        connection = connection if connection is not None else settings.queues.connect()
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in settings.queue_names]
        name = settings.name or uuid.uuid4().hex
        inflight = Inflight(settings.queues, connection, name, settings.max_crashes, settings.queue_names)
        super().__init__(
            queues,
            connection=connection,
            serializer=JSONSerializer,
            name=name,
            inflight=inflight,
            job_class=GuardedJob.allowing(settings.extra_functions),
            **kwargs,
        )
        self.context = WorkerContext.build(settings, connection, engines)
        if settings.serves_llm:
            self.context.claim_generations = self._claim_generations
        self.heartbeat_thread = Heartbeat(settings, name, report_fd)
        self.adopt_from = adopt
        self._taken: list[tuple[Job, Queue]] = []  # batch jobs taken with the one running now
        self._interrupted: dict[str, BaseException] = {}  # a job's run that paused or was cancelled
        self.fair = FairShare(settings.queues)
        # Streamed microphones, beside the jobs: with an STT, a VAD and a turn model, unless WORKER_LISTENERS=0.
        self.listeners: Listeners | None = None
        if engines is not None and None not in (engines.stt, engines.vad, engines.turn) and settings.listeners:
            self.listeners = Listeners(settings, engines, name)
        install(self.context)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        if self._taken:
            return self._taken.pop(0)
        found = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        if found is not None and self._batches(*found):
            self._take_batch(*found)
        return found

    def _batches(self, job: Job, queue: Queue) -> bool:
        engines, settings = self.context.engines, self.context.settings
        if engines is None:
            return False
        if queue.name == settings.queues.llm_queue and job.func_name == functions.GENERATE:
            return settings.llm_batch > 1 and any(llm.capabilities.batches for llm in engines.llms.values())
        return (
            engines.stt is not None
            and engines.stt.capabilities.batches
            and settings.batch_size > 1
            and queue.name == settings.queues.batch_queue
            and job.func_name == functions.TRANSCRIBE
        )

    def _take_batch(self, first: Job, queue: Queue) -> None:
        """Take the other waiting jobs of the queue (up to the batch size in all) to do with the
        first: batch files are recognized in one forward pass now, each then running as its own
        RQ job with its transcript ready; generations are decoded together when the first runs
        (jobs.generate), each then ending as its own RQ job."""
        generating = queue.name == self.context.settings.queues.llm_queue
        size = self.context.settings.llm_batch if generating else self.context.settings.batch_size
        jobs = [first, *self._claim(queue, size - 1)]
        if generating:
            self.context.companions[first.id] = _payloads(jobs[1:], functions.GENERATE, GenerationJob)
            return
        payloads = _payloads(jobs, functions.TRANSCRIBE, TranscriptionJob)
        if len(payloads) < 2:
            return
        assert self.context.engines is not None
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            made = transcription.transcribe_together(payloads, self.context.engines, self.context.blobs)
        except Exception:
            # Each job then runs alone and fails (or not) with its own error.
            log.exception("recognizing %d files in one batch failed; running them one by one", len(payloads))
            return
        cpu_ms, wall_ms = (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000
        # Each job's metering charges its share of the batch, by the audio it brought.
        total_s = sum(t.duration_s for t in made.values()) or 1.0
        for job_id, transcript in made.items():
            share = transcript.duration_s / total_s
            self.context.prefetched[job_id] = Prefetched(
                transcript, round(cpu_ms * share), round(wall_ms * share), len(made)
            )

    def _claim(self, queue: Queue, count: int) -> list[Job]:
        """Up to `count` more waiting jobs of the queue, taken now: each runs after the one running."""
        jobs = []
        for job_id in self.inflight.claim_more(queue.name, count):
            try:
                job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
            except NoSuchJobError:
                self.inflight.drop(job_id)
                continue
            self._taken.append((job, queue))
            jobs.append(job)
        return jobs

    def _claim_generations(self, count: int) -> list[GenerationJob]:
        """Generation jobs to join the batch decoding now (jobs.generate); their RQ jobs run after."""
        queue = next(q for q in self.queues if q.name == self.context.settings.queues.llm_queue)
        return _payloads(self._claim(queue, count), functions.GENERATE, GenerationJob)

    def execute_job(self, job: Job, queue: Queue) -> None:
        session_id = job.meta.get("session_id")
        self.heartbeat_thread.job_started(job.id, float(job.timeout or Queue.DEFAULT_TIMEOUT))
        try:
            with log_context(session_id=session_id if isinstance(session_id, str) else None, job_id=job.id):
                super().execute_job(job, queue)
        finally:
            self.heartbeat_thread.job_ended()
            # Jobs taken to decode with this one that it never got to (it failed before its batch
            # began) run alone, each in its turn.
            self.context.companions.pop(job.id, None)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if isinstance(exc_info[1], REDIS_DOWN_OR_FULL):
            # Not the job's failure: Redis went away under it. The job stays on this worker's
            # in-flight list and runs again once Redis is back (see lean.py).
            raise exc_info[1]
        if isinstance(exc_info[1], transcription.Paused | transcription.Cancelled):
            self._interrupted[job.id] = exc_info[1]  # not a failure: see handle_job_failure
            log.info("job %s: %s", job.id, exc_info[1])
            return
        error = job_error(exc_info[1])
        if isinstance(exc_info[1], JobTimeoutException):
            # Deterministic work that ran past its limit would run past it again: not retried.
            limit = f" {job.timeout} s" if job.timeout else ""
            error = error.model_copy(
                update={
                    "message": f"The job ran past its{limit} time limit, and would again, so it was not "
                    "tried again. Try shorter audio or text, or ask the operator to raise the limit.",
                    "retryable": False,
                }
            )
        if not error.retryable:
            job.retries_left = 0
        job.meta["error"] = error.model_dump(mode="json")
        job.save_meta()
        super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        events = self.context.current_events
        if events is not None and events.job_id == job.id:
            events.ending = None  # a result made before the failure does not go out
        interrupted = self._interrupted.pop(job.id, None)
        if isinstance(interrupted, transcription.Paused):
            return self._requeue(job, queue, kwargs.get("execution"))
        if isinstance(interrupted, transcription.Cancelled):
            return self._cancelled(job, kwargs.get("execution"))
        if not job.should_retry:
            self._tell_failure(job)  # held, and published with RQ's record of the failure
        super().handle_job_failure(job, queue, *args, **kwargs)

    def _requeue(self, job: Job, queue: Queue, execution: Any) -> None:
        """A paused run's end: the job is back at the front of its queue and its user's lane. Its
        next run numbers its events from 0 again, as any worker's would: what it publishes again
        (the progress of the pieces done) is stored once."""
        self.context.current_events = None
        payload = job.args[0] if job.args and isinstance(job.args[0], dict) else {}
        user, session = payload.get("user") or "anonymous", str(job.meta.get("session_id") or "")
        with self.connection.pipeline() as pipe:
            job.set_status(JobStatus.QUEUED, pipeline=pipe)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            pipe.lpush(queue.key, job.id)
            self.fair.lane(pipe, queue.name, job.id, user, session, front=True)
            pipe.rpush(self.context.settings.queues.wake_key(queue.name), 1)
            pipe.execute()

    def _cancelled(self, job: Job, execution: Any) -> None:
        """A cancelled run's end: RQ's `canceled`, and the job's session told, together."""
        session_id = events_stream(job)
        if isinstance(session_id, str):
            # `canceled` is the code the REST API already gives a cancelled file (web/batch.py).
            ending = payloads.Failed(code=ErrorCode.CANCELED, message=CANCELLED, retryable=False)
            self.context.events_for(session_id, job.id).emit(ending)
        registry = CanceledJobRegistry(job.origin, connection=self.connection, serializer=JSONSerializer)
        with self.connection.pipeline() as pipe:
            job.set_status(JobStatus.CANCELED, pipeline=pipe)
            registry.add(job, pipeline=pipe)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)  # the ending goes out here
            pipe.delete(self.context.settings.queues.cancel_key(job.id))
            pipe.execute()

    def _tell_failure(self, job: Job) -> None:
        session_id = events_stream(job)
        error = job.meta.get("error") or job_error(RuntimeError("the job failed")).model_dump(mode="json")
        if isinstance(session_id, str):
            self.context.events_for(session_id, job.id).emit(payloads.Failed.model_validate(error))
        else:
            log.error("job %s failed with no session to tell: %s", job.id, error["message"])

    def cleanup_execution(self, job: Job, pipeline: Any, execution: Any = None) -> None:
        # Inside the transaction that records the job's end (success, failure or retry): its held
        # ending goes out in it, so an ending is never seen before RQ says the job ended.
        super().cleanup_execution(job, pipeline, execution)
        events = self.context.current_events
        if events is not None and events.job_id == job.id:
            events.publish_ending(pipeline)

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        self.heartbeat_thread.start()
        if self.adopt_from:
            self.inflight.adopt(self.adopt_from, force=True)
        for job_id in self.connection.lrange(self.inflight.key, 0, -1):
            self.inflight.settle(as_text(job_id))
        engines = self.context.engines
        if engines is not None:
            voices = {name: f"{engine.name}: {engine.voices[name]}" for name, engine in engines.voices.items()}
            announce_voices(self.connection, self.context.settings.queues, voices)
        queues = self.queue_names()
        if self.listeners is not None:
            self.listeners.start()
            queues.append(f"{self.context.settings.queues.listen_queue} ({self.context.settings.listeners} listeners)")
        # A line for people and scripts waiting on the worker (make run, tests, benchmarks).
        print(f"worker ready: {self.name} on {', '.join(queues)}", file=sys.stderr, flush=True)

    def teardown(self) -> None:
        if self.listeners is not None:
            self.listeners.stop()
        super().teardown()  # type: ignore[no-untyped-call]  # RQ's, unannotated (see pyproject)
        self.heartbeat_thread.stop()


def _payloads(jobs: list[Job], function: str, model: Any) -> list[Any]:
    """The valid payloads of the jobs that run `function` (another fails alone, with its own message)."""
    payloads = []
    for job in jobs:
        try:
            if job.func_name == function:
                payloads.append(model.model_validate(job.args[0]))
        except (ValidationError, IndexError):
            continue
    return payloads
