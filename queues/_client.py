"""Enqueue jobs by function name, as JSON, from blocking or async code.

Without a queue named, a sentence of a turn (a synthesis job with a `turn_id`) goes to the
`speech` queue, which workers serve first, a generation to `llm`, and everything else to `realtime`. Each enqueue also
drops a token in the wake list that idle workers block on, and puts the job in its user's lane so
that workers take users in turn (`fair.py`); a user or session with as many jobs waiting as it may
is refused with `RateLimited` before anything is written.

RQ builds every job (its hash, status, queue push) into a pipeline; the async path sends that
pipeline on an asyncio connection (`_rq.send_recorded`), so the event loop never blocks and an
enqueue costs one round trip, while the keys written are exactly RQ's own. The other RQ calls run
in a thread (`_rq.in_thread`).
"""

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import redis
import redis.asyncio
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from shared_schemas import Event, GenerationJob, JobPayload, ListenJob, PingJob, SynthesisJob, TranscriptionJob

from . import functions
from ._fair import UNLANE, FairShare, owner_of
from ._rq import in_thread, send_recorded
from .settings import QueueSettings

if TYPE_CHECKING:
    from ._hub import EventHub

# A listen job runs as long as its microphone stays open; its listener ends idle streams itself.
LISTEN_TIMEOUT_S = 24 * 3600
# Tokens kept in the wake list: enough to wake every idle worker of a large pool at once.
WAKE_TOKENS = 256
# What `stop` did: the job will not run; it runs and stops at the end of its piece (a job not worked
# in pieces finishes); it had already ended; there is no such job.
StopOutcome = Literal["canceled", "stopping", "ended", "unknown"]
_WAITING = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


class JobClient:
    def __init__(
        self,
        settings: QueueSettings,
        connection: redis.Redis | None = None,
        aconnection: redis.asyncio.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.connection = connection if connection is not None else settings.connect()
        self._aconnection = aconnection
        self._queues: dict[str, Queue] = {}
        self.fair = FairShare(settings)

    @property
    def aconnection(self) -> redis.asyncio.Redis:
        if self._aconnection is None:
            self._aconnection = self.settings.connect_async()
        return self._aconnection

    def queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            if name not in self.settings.all_queue_names:
                raise ValueError(f"unknown queue {name!r}; queues: {self.settings.all_queue_names}")
            queue = Queue(name, connection=self.connection, serializer=JSONSerializer)
            queue.get_redis_server_version()  # cached on the queue; later enqueues need no I/O
            self._queues[name] = queue
        return queue

    def enqueue(self, payload: JobPayload, queue: str | None = None) -> Job:
        """Raises RateLimited (nothing enqueued) when its user or session has all the jobs waiting it may."""
        asked = self.fair.asks([(payload, queue or self.default_queue(payload))])
        if asked:
            self.fair.check(asked, self.connection.mget([key for key, *_ in asked]))
        pipe = self.connection.pipeline()
        job = self._build(payload, queue, pipe)
        pipe.execute()
        return job

    async def aenqueue(self, payload: JobPayload, queue: str | None = None) -> Job:
        name = queue or self.default_queue(payload)
        if name not in self._queues:
            await in_thread(self.queue, name)
        await self._admit([payload], queue)
        recorded = self.connection.pipeline()
        job = self._build(payload, name, recorded)
        await send_recorded(recorded, self.aconnection)
        return job

    async def aenqueue_all(
        self, payloads: Sequence[JobPayload], queue: str | None = None, also: Callable[[Any], None] | None = None
    ) -> None:
        """Enqueue every job, and whatever `also` adds to the pipeline, in one transaction: all of
        it, or (Redis refusing, full or away) none of it."""
        names = {queue or self.default_queue(p) for p in payloads}
        for name in names - set(self._queues):
            await in_thread(self.queue, name)
        await self._admit(payloads, queue)
        recorded = self.connection.pipeline()
        for payload in payloads:
            self._build(payload, queue, recorded)
        if also is not None:
            also(recorded)
        await send_recorded(recorded, self.aconnection)

    async def _admit(self, payloads: Sequence[JobPayload], queue: str | None) -> None:
        """Raise RateLimited when a user or session would have more jobs waiting than it may. A read
        before the enqueue (one round trip): enqueues at the same instant may each pass, and
        overshoot the limit by a few."""
        asked = self.fair.asks([(p, queue or self.default_queue(p)) for p in payloads])
        if asked:
            self.fair.check(asked, await self.aconnection.mget([key for key, *_ in asked]))

    def default_queue(self, payload: JobPayload) -> str:
        if isinstance(payload, ListenJob):
            return self.settings.listen_queue
        if isinstance(payload, GenerationJob):
            return self.settings.llm_queue
        if isinstance(payload, SynthesisJob) and payload.turn_id is not None:
            return self.settings.speech_queue
        return self.settings.realtime_queue

    def _build(self, payload: JobPayload, queue: str | None, pipe: Any) -> Job:
        function, timeout, retry = self._plan(payload)
        target = self.queue(queue or self.default_queue(payload))
        job = target.enqueue_call(
            function,
            args=(payload.model_dump(mode="json"),),
            job_id=payload.job_id,
            timeout=timeout,
            result_ttl=self.settings.result_ttl_s,
            failure_ttl=self.settings.failure_ttl_s,
            description=f"{payload.kind} for session {payload.session_id}",
            meta=_meta(payload),
            retry=retry,
            pipeline=pipe,
        )
        if not isinstance(payload, ListenJob):  # listeners block on their queue itself
            self.fair.lane(pipe, target.name, job.id, *owner_of(payload))
            pipe.rpush(self.settings.wake_key(target.name), 1)
            pipe.ltrim(self.settings.wake_key(target.name), -WAKE_TOKENS, -1)
        return job

    def _plan(self, payload: JobPayload) -> tuple[str, int, Retry | None]:
        retry = Retry(max=self.settings.retries) if self.settings.retries > 0 else None
        match payload:
            case TranscriptionJob():
                return functions.TRANSCRIBE, self.settings.transcribe_timeout_s, retry
            case SynthesisJob():
                return functions.SYNTHESIZE, self.settings.synthesize_timeout_s, retry
            case GenerationJob():
                # Never retried: its tokens have gone out as they came; a second run would repeat them.
                return functions.GENERATE, self.settings.generate_timeout_s, None
            case PingJob():
                return functions.PING, 10, None
            case ListenJob():
                # Never retried: a listener that died leaves a stream its app gives up on (web/mic.py).
                return functions.LISTEN, LISTEN_TIMEOUT_S, None
        raise TypeError(f"not a job payload: {type(payload).__name__}")

    async def arun(
        self,
        hub: "EventHub",
        payload: JobPayload,
        queue: str | None = None,
        timeout: float = 120.0,
        enqueue: Callable[[JobPayload, str | None], Awaitable[object]] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Enqueue and yield the job's events as they come (from its `reply_to` stream, for a
        generation that names one), up to and including its last one. `enqueue(payload, queue)`:
        how to enqueue it (the app's meter); by default, at once."""
        stream = payload.stream if isinstance(payload, GenerationJob) else payload.session_id
        async with hub.subscribe(stream) as sub:
            await (enqueue or self.aenqueue)(payload, queue)
            async with asyncio.timeout(timeout):
                while True:
                    event = await sub.get()
                    if event.job_id != payload.job_id:
                        continue
                    yield event
                    if event.terminal:
                        return

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job; a running one finishes. Whether a job was cancelled."""
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return False
        return self._cancel_waiting(job)

    def _cancel_waiting(self, job: Job) -> bool:
        if job.get_status() != "queued":
            return False
        # Taken out of its queue first, in one command: a worker's claim moves the id out of the
        # same list atomically, so exactly one of the two has it. The job still says `queued`
        # between a worker's claim and its start; cancelling it then would report a job cancelled
        # that the worker goes on to run.
        if not self.connection.lrem(Queue.redis_queue_namespace_prefix + job.origin, 0, job.id):
            return False
        try:
            job.cancel()
        except InvalidJobOperation:  # started or finished since we looked
            return False
        args = self.fair.unlane_args(job.origin, job.id)
        if args is not None:
            self.connection.eval(UNLANE, 0, *args)
        return True

    async def acancel(self, job_id: str) -> bool:
        return await in_thread(self.cancel, job_id)

    def stop(self, job_id: str) -> StopOutcome:
        """Cancel a job wherever it is. A waiting one is cancelled at once; a running one is asked
        to stop: a transcription worked in pieces stops at the end of the piece it is on and ends
        `canceled`, a generation stops within one token and ends with `generated` (finish reason
        `cancelled`), anything else finishes. What happened (see StopOutcome)."""
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return "unknown"
        # Asked first: a worker that takes the job while we cancel it stops it at its first piece.
        ttl = self.settings.blob_ttl_s + max(self.settings.transcribe_timeout_s, self.settings.generate_timeout_s)
        self.connection.set(self.settings.cancel_key(job_id), 1, ex=ttl)
        if job.get_status(refresh=False) in _WAITING and self._cancel_waiting(job):
            return "canceled"
        # `queued` out of its queue: a worker has taken it and is about to start it.
        if job.get_status() in (JobStatus.STARTED, JobStatus.QUEUED):
            return "stopping"
        self.connection.delete(self.settings.cancel_key(job_id))
        return "ended"

    async def astop(self, job_id: str) -> StopOutcome:
        return await in_thread(self.stop, job_id)


def _meta(payload: JobPayload) -> dict[str, str]:
    """What workers read off the job: its session, its kind, and where its events go (`reply_to`)."""
    meta = {"session_id": payload.session_id, "kind": payload.kind}
    if isinstance(payload, GenerationJob):
        meta["reply_to"] = payload.stream
    return meta
