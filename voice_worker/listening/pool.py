"""A worker's listeners: up to `WORKER_LISTENERS` streamed microphones at once, each in a thread
beside the job loop, so that a long job never keeps a person from being heard.

`listen` jobs are RQ jobs (JSON, by name, on their own queue, visible in rq-dashboard) that this
pool takes instead of the job loop: a free slot claims the next one into the worker's in-flight
list (the same atomic move the loop uses), marks it started, listens until the stream ends, and
records its end (finished or failed, with the stream's last event) in one transaction that also
takes it off the list. RQ's job-loop machinery (SIGALRM time limits, the started-job registry) is
not used: a listener ends idle streams itself, and the lease says it is alive.

The lease of every open stream is renewed here, by one timer thread (`_renew`), not by the
listeners' audio loops: a listener that runs behind real time (a busy CPU) is alive, and keeps its
stream; only one that made no progress at all for `stuck_s` lets its lease lapse. A worker that
dies leaves its listen jobs on its list: whoever adopts them puts them back on the listen queue
(`inflight.settle`), and the listener that takes one resumes the stream from its checkpoint
(listener.py), while its app waits for the lease to come back (web/mic.py).
"""

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import now, utcformat

from queues import EventPublisher, JobEvents, MicReader, functions
from shared_schemas import ErrorCode, JobError, ListenJob, payloads

from ..errors import VoiceError, job_error
from ..inflight import Inflight
from ..outage import REDIS_DOWN_OR_FULL
from .listener import Listener, ListenSettings, WorkerStopping

if TYPE_CHECKING:
    from ..engines import Engines
    from ..settings import WorkerSettings

log = logging.getLogger(__name__)
RESUMED_SEQ = 1_000_000  # the events of a stream's n-th resumed listener are numbered from n times this


class Listeners:
    def __init__(self, settings: "WorkerSettings", engines: "Engines", worker: str) -> None:
        self.settings = settings
        self.engines = engines
        self.worker = worker
        self.connection = settings.queues.connect()
        self.inflight = Inflight(settings.queues, self.connection, worker, settings.max_crashes)
        self.publisher = EventPublisher(settings.queues, self.connection)
        self.queue_key = f"rq:queue:{settings.queues.listen_queue}"
        self.listen = ListenSettings(
            endpoint=settings.endpoint, confirm=settings.confirm, idle_s=settings.listen_idle_s
        )
        self.slots = threading.BoundedSemaphore(settings.listeners)
        self.stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._claimer = threading.Thread(target=self._claim, name="listeners", daemon=True)
        self._open: dict[str, Listener] = {}  # by stream key: those whose lease this pool renews
        self._renewer = threading.Thread(target=self._renew, name="listeners-lease", daemon=True)

    @property
    def active(self) -> int:
        return sum(t.is_alive() for t in list(self._threads))

    def start(self) -> None:
        self._claimer.start()
        self._renewer.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop claiming; each open stream goes back to the listen queue, for another worker to resume."""
        self.stopping.set()
        self._claimer.join(timeout_s)
        for thread in list(self._threads):
            thread.join(timeout_s)
        self._renewer.join(timeout_s)

    def _renew(self) -> None:
        """Every `renew_s`, renew the lease of each open stream whose listener is making progress."""
        settings, stuck = self.listen, set[Listener]()
        while not self.stopping.wait(settings.renew_s):
            live = [listener for listener in list(self._open.values()) if not listener.ended]
            now_stuck = {listener for listener in live if not listener.alive()}
            for listener in now_stuck - stuck:
                job_id = listener.job.job_id
                log.error("listener of %s made no progress for %.0f s: its lease lapses", job_id, settings.stuck_s)
            stuck = now_stuck
            try:
                with self.connection.pipeline(transaction=False) as pipe:
                    for listener in live:
                        if listener not in stuck and not listener.ended:  # (one that just ended let its go)
                            pipe.set(listener.reader.lease, self.worker, px=settings.lease_ms)
                    pipe.execute()
            except REDIS_DOWN_OR_FULL:
                log.warning("could not renew the listeners' leases: redis unavailable")

    def _claim(self) -> None:
        while not self.stopping.is_set():
            if not self.slots.acquire(timeout=0.5):
                continue
            try:
                found = self.inflight.claim([self.queue_key], 1.0)
            except REDIS_DOWN_OR_FULL:
                found = None
                time.sleep(1.0)
            if found is None or self.stopping.is_set():
                self.slots.release()
                if found is not None:  # taken just as the worker stops: it goes back
                    self.connection.lpush(self.queue_key, found[1])
                    self.inflight.drop(found[1])
                continue
            thread = threading.Thread(target=self._serve, args=(found[1],), name=f"listen-{found[1]}", daemon=True)
            self._threads = {t for t in self._threads if t.is_alive()} | {thread}
            thread.start()

    def _serve(self, job_id: str) -> None:
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            self.inflight.drop(job_id)
            self.slots.release()
            return
        events: JobEvents | None = None
        try:
            payload = self._payload(job)
            # A listener resuming the stream (its worker died) numbers its events past the last run's.
            reader = MicReader(self.connection, payload.stream_key, self.worker, self.settings.queues.mic_ttl_s)
            first_seq = RESUMED_SEQ * (reader.count_run() - 1)
            events = JobEvents(
                self.publisher, payload.session_id, payload.job_id, hold_ending=True, first_seq=first_seq
            )
            with self.connection.pipeline() as pipe:
                job.prepare_for_execution(self.worker, pipeline=pipe)
                pipe.execute()
            listener = Listener(
                payload, self.engines, self.connection, self.publisher, events, self.listen, self.worker, self.stopping
            )
            self._open[payload.stream_key] = listener
            try:
                result = listener.run()
            finally:
                self._open.pop(payload.stream_key, None)
            self._finished(job, result, events)
        except WorkerStopping:
            self._hand_over(job)
        except REDIS_DOWN_OR_FULL:
            log.warning("redis went away while listening to %s; its app opens a new stream", job_id)
        except Exception as exc:  # noqa: BLE001 - any failure of a stream ends it as data, for its person
            log.exception("listening to %s failed", job_id)
            self._failed(job, job_error(exc), events)
        finally:
            self.slots.release()

    def _payload(self, job: Job) -> ListenJob:
        if job.func_name != functions.LISTEN:
            message = f"The listen queue takes {functions.LISTEN} jobs only, not {job.func_name!r}."
            raise VoiceError(ErrorCode.INVALID_PAYLOAD, message)
        try:
            return ListenJob.model_validate(job.args[0] if job.args else {})
        except ValidationError as exc:
            raise VoiceError(ErrorCode.INVALID_PAYLOAD, job_error(exc).message) from None

    def _finished(self, job: Job, result: dict[str, Any], events: JobEvents) -> None:
        ttl = self.settings.queues.result_ttl_s
        job.ended_at = now()
        with self.connection.pipeline() as pipe:
            job.set_status(JobStatus.FINISHED, pipeline=pipe)
            pipe.hset(job.key, "ended_at", utcformat(job.ended_at))
            Result.create(job, Result.Type.SUCCESSFUL, ttl, return_value=result, worker_name=self.worker, pipeline=pipe)
            job.finished_job_registry.add(job, ttl, pipe)
            pipe.expire(job.key, ttl)
            events.publish_ending(pipe)
            self.inflight.drop(job.id, pipe)
            pipe.execute()

    def _hand_over(self, job: Job) -> None:
        """This worker stops while the stream is open: the job goes back to the front of the listen
        queue, and the listener that takes it resumes the stream from its checkpoint (its app waits
        for that, up to COUNCIL_MIC_RESUME_WAIT_S, the microphone still open)."""
        try:
            with self.connection.pipeline() as pipe:
                job.set_status(JobStatus.QUEUED, pipeline=pipe)
                pipe.lpush(self.queue_key, job.id)
                self.inflight.drop(job.id, pipe)
                pipe.execute()
            log.info("worker stopping: stream %s handed over to the next listener", job.id)
        except REDIS_DOWN_OR_FULL:
            log.warning("could not hand over listen job %s: redis unavailable", job.id)

    def _failed(self, job: Job, error: JobError, events: JobEvents | None) -> None:
        session_id = job.meta.get("session_id")
        try:
            with self.connection.pipeline() as pipe:
                job.meta["error"] = error.model_dump(mode="json")
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
                job.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=error.message, pipeline=pipe)
                if events is None and isinstance(session_id, str):
                    events = JobEvents(self.publisher, session_id, job.id, hold_ending=True)
                if events is not None:
                    events.ending = None
                    events.emit(payloads.Failed(**error.model_dump()))
                    events.publish_ending(pipe)
                self.inflight.drop(job.id, pipe)
                pipe.execute()
        except REDIS_DOWN_OR_FULL:
            log.warning("could not record the failure of listen job %s: redis unavailable", job.id)
