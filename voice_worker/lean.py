"""RQ's SimpleWorker with its per-job Redis traffic cut from ~20 round trips to 5.

Stock RQ sends its worker heartbeat (3 commands, one round trip each) several times per job,
prepares each job in two transactions, WATCHes the job's dependents before finishing it, and
sets the worker's state twice. Here, per job: BLPOP, HGETALL (the job), one transaction to start
it, the job itself, one transaction to finish it. Keys and values stay exactly RQ's, so
rq-dashboard, registries, results and retries work as before.

What it gives up, on purpose:
- job dependencies (`depends_on`): a finished job does not release dependents. Council never
  enqueues with dependencies; `JobClient` has no way to ask for them.
- rate-limited jobs (RQ's `rate_limit`): their slot is not released. Council does not use them.
- the idle heartbeat and the `rq suspend` check run every few seconds, not before every job.
"""

import time
from datetime import timedelta
from typing import Any

from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus


class LeanSimpleWorker(SimpleWorker):
    heartbeat_interval_s: float = 5.0
    suspension_check_s: float = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_beat = 0.0
        self._last_suspension_check = 0.0

    # -- fewer idle round trips -------------------------------------------------------------

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is None and time.monotonic() - self._last_beat < self.heartbeat_interval_s:
            return
        self._last_beat = time.monotonic()
        super().heartbeat(timeout, pipeline)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and state == getattr(self, "_state", None):
            return
        super().set_state(state, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        if time.monotonic() - self._last_suspension_check < self.suspension_check_s:
            return
        self._last_suspension_check = time.monotonic()
        super().check_for_suspension(burst)

    # -- one transaction to start a job, one to finish it ---------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self.connection.pipeline() as pipe:
            ttl = self.get_heartbeat_ttl(job)
            execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            self.heartbeat(ttl, pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)
            pipe.persist(job.key)
            if len(self.queues) == 1:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
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
                job._handle_success(
                    result_ttl,
                    pipeline=pipe,
                    worker_name=self.name,
                    execution_id=execution.id,
                    execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            pipe.execute()
        self.log.debug("job %s finished in %s", job.id, job.ended_at - job.started_at or timedelta(0))
