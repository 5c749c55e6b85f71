"""RQ's SimpleWorker with its per-job Redis traffic cut from ~20 round trips to 5.

Stock RQ sends its worker heartbeat (3 commands, one round trip each) several times per job,
prepares each job in two transactions, WATCHes the job's dependents before finishing it, and
sets the worker's state twice. Here, per job: one move of the job id from its queue into this
worker's in-flight list (`inflight.py`; RQ's BLPOP over several queues has no such list, so a
crash at that instant lost the job; the move takes users in turn, `queues.FairShare`), HGETALL (the
job), one transaction to start it, the job itself, one transaction to finish it that also takes
it off the in-flight list. Keys and values stay exactly RQ's, so rq-dashboard, registries,
results and retries work as before.

A Redis outage does not stop the worker: it waits with backoff, logs the outage and its end once,
and then settles whatever its own list still holds (a job whose end could not be recorded runs
again; its events are de-duplicated by `queues.JobEvents`).

What it gives up, on purpose:
- job dependencies (`depends_on`): a finished job does not release dependents. Council never
  enqueues with dependencies; `JobClient` has no way to ask for them.
- rate-limited jobs (RQ's `rate_limit`): their slot is not released. Council does not use them.
- repeated jobs (RQ's `Repeat`): a finished job is not scheduled again (`Repeat.schedule`); the
  guarded job class refuses a job with repeats as `invalid_payload` rather than drop them.
- the idle heartbeat and the `rq suspend` check run every few seconds, not before every job.
"""

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from redis.client import Pipeline
from rq import SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

from queues import as_text

from .inflight import Inflight
from .outage import REDIS_DOWN_OR_FULL, Outage


class LeanSimpleWorker(SimpleWorker):
    heartbeat_interval_s: float = 5.0
    suspension_check_s: float = 1.0
    # An idle worker waits on the wake list (a token per job our clients enqueue); a job pushed by
    # another client (rq-dashboard's requeue), or a token another worker took, waits at most this long.
    idle_block_s: float = 1.0

    def __init__(self, *args: Any, inflight: Inflight, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inflight = inflight
        self.outage = Outage(f"worker {self.name}")
        self._last_beat = 0.0
        self._last_suspension_check = 0.0

    # -- taking jobs through the in-flight list ----------------------------------------------

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        self.set_state(WorkerStatus.IDLE)
        block_s = 0.0 if timeout is None else min(self.idle_block_s, timeout)
        idle_since = time.monotonic()
        while True:
            try:
                if self.outage.since is not None:
                    self.connection.ping()
                    self.outage.ok()
                    self.settle_own()
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                found = self.inflight.claim_job(block_s)
                if found is None:
                    if timeout is None:
                        return None
                    if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                        return None
                    continue
                queue_key, job_id = found
                try:
                    job = self.job_class.fetch(job_id, connection=self.connection, serializer=self.serializer)
                except NoSuchJobError:  # the job hash is gone (deleted or expired): nothing to run
                    self.inflight.drop(job_id)
                    continue
                if job.get_status(refresh=False) == JobStatus.CANCELED:  # cancelled as we took it
                    self.inflight.drop(job_id)
                    continue
                queue = self.queue_class.from_queue_key(
                    queue_key,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
                return job, queue
            except REDIS_DOWN_OR_FULL as exc:
                self.outage.failed(exc)

    def settle_own(self) -> None:
        """Requeue (or fail) what this worker's own list holds while it runs no job."""
        for job_id in self.connection.lrange(self.inflight.key, 0, -1):
            self.inflight.settle(as_text(job_id), crashed=False)

    def cleanup_execution(self, job: Job, pipeline: Pipeline, execution: Execution | None = None) -> None:
        # Every end of a job (success, failure, retry) goes through here inside its transaction.
        super().cleanup_execution(job, pipeline, execution)
        self.inflight.drop(job.id, pipeline)

    # -- fewer idle round trips -------------------------------------------------------------

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        if time.monotonic() - self._last_beat < self.heartbeat_interval_s:
            return
        self._last_beat = time.monotonic()
        with self._outage_noted():
            super().heartbeat(timeout, pipeline)

    def run_maintenance_tasks(self) -> None:
        with self._outage_noted():
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]  # RQ's, unannotated (see pyproject)

    @contextlib.contextmanager
    def _outage_noted(self) -> Iterator[None]:
        """RQ's loop quits on a Redis error outside a job; here the dequeue loop waits it out."""
        try:
            yield
        except REDIS_DOWN_OR_FULL as exc:
            self.outage.failed(exc, sleep=False)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().set_state(state, pipeline)
            return
        if state == self.get_state():
            return
        with self._outage_noted():
            super().set_state(state, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        if time.monotonic() - self._last_suspension_check < self.suspension_check_s:
            return
        self._last_suspension_check = time.monotonic()
        with self._outage_noted():
            super().check_for_suspension(burst)

    # -- one transaction to start a job, one to finish it ---------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            self._execute_job(job, queue)
        except REDIS_DOWN_OR_FULL as exc:
            # Where the job got to is unknown: it stays on this worker's list, and is settled when
            # Redis is back (see dequeue_job_and_maintain_ttl).
            self.outage.failed(exc, sleep=False)

    def _execute_job(self, job: Job, queue: Queue) -> None:
        with self.connection.pipeline() as pipe:
            ttl = self.get_heartbeat_ttl(job)
            execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            self.heartbeat(ttl, pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)
            pipe.persist(job.key)
            pipe.execute()
        self._last_beat = time.monotonic()
        self.perform_job(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Done by `execute_job` in its start transaction."""

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        job.ended_at = now()

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution) -> None:
        assert job.started_at is not None and job.ended_at is not None
        with self.connection.pipeline() as pipe:
            self.increment_successful_job_count(pipeline=pipe)
            self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            result_ttl = job.get_result_ttl(self.default_result_ttl)
            if result_ttl != 0:
                # Marks it finished, saves it, its result and the finished registry (docs/internals.md).
                job._handle_success(
                    result_ttl,
                    pipeline=pipe,
                    worker_name=self.name,
                    execution_id=execution.id,
                    execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )
            else:
                job.set_status(JobStatus.FINISHED, pipeline=pipe)  # its key goes at once, below
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            pipe.execute()
        self.log.debug("job %s finished in %s", job.id, job.ended_at - job.started_at or timedelta(0))
