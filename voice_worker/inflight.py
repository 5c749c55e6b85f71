"""A worker's in-flight list: the jobs it has taken and not yet finished, kept in Redis.

A job moves from its queue into the worker's list in one atomic command (LMOVE/BLMOVE, or for
the job queues the fair-share claim, one Lua call: `FairShare.CLAIM`, which takes users in turn),
and leaves it in the same transaction that records its end (see `lean.py`). So at every instant a
job is in a queue, in exactly one worker's list, or done: a worker that dies loses nothing.

Liveness: each worker keeps a short-lived `alive` key fresh (see `heartbeat.py`). When a worker's
key has been gone on two looks in a row, a live worker *adopts* its list (one Lua call moves it
into its own list, so two adopters never share a job) and settles each job: back to the front of
its queue, or failed with a message when it already killed workers twice or was stuck past its
time limit (the supervisor marks those, see `supervisor.py`).
"""

import logging
from dataclasses import dataclass
from typing import cast

import redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from queues import EventPublisher, FairShare, QueueSettings, as_text, functions
from shared_schemas import ErrorCode, Event, JobError, payloads

log = logging.getLogger(__name__)
LISTENER_LOST = "The voice worker listening to you stopped (it crashed or was restarted). Speak again."
GENERATOR_LOST = (
    "The worker writing this answer stopped (it crashed or was restarted) after part of it may have gone "
    "out; it is not written again on its own. Ask again."
)

# KEYS: my list, then the queues in priority order. Moves the first waiting job of the first
# non-empty queue into my list. For queues with no lanes (the listeners'); the job queues are
# claimed with `FairShare.CLAIM`.
_CLAIM = """
for i = 2, #KEYS do
  local id = redis.call('LMOVE', KEYS[i], KEYS[1], 'LEFT', 'RIGHT')
  if id then return {KEYS[i], id} end
end
return false
"""

# KEYS: the other worker's alive key, its list, my list, the set of workers with lists.
# ARGV: its name, "1" to adopt even if it looks alive (its own supervisor knows it is dead).
_ADOPT = """
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return false end
local ids = {}
while true do
  local id = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
  if not id then break end
  ids[#ids + 1] = id
end
redis.call('SREM', KEYS[4], ARGV[1])
return ids
"""


@dataclass(frozen=True)
class Keys:
    prefix: str

    @classmethod
    def of(cls, settings: QueueSettings) -> "Keys":
        return cls(settings.key_prefix)

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def inflight(self, worker: str) -> str:
        return f"{self.prefix}:inflight:{worker}"

    def alive(self, worker: str) -> str:
        return f"{self.prefix}:alive:{worker}"

    def hung(self, job_id: str) -> str:
        return f"{self.prefix}:hung:{job_id}"


class Inflight:
    """One worker's list: claim jobs into it, adopt dead workers' lists, settle adopted jobs."""

    def __init__(
        self,
        settings: QueueSettings,
        connection: redis.Redis,
        worker: str,
        max_crashes: int = 2,
        served: tuple[str, ...] | None = None,
    ) -> None:
        self.keys = Keys.of(settings)
        self.fair = FairShare(settings)
        # The job queues this worker takes jobs from (WORKER_QUEUES), in priority order.
        self.served = served if served is not None else settings.queue_names
        self.connection = connection
        self.wake_key = settings.wake_key  # (of a queue name)
        self.publisher = EventPublisher(settings, connection)
        self.worker = worker
        self.key = self.keys.inflight(worker)
        self.max_crashes = max_crashes
        self._claim = connection.register_script(_CLAIM)
        self._fair_claim = connection.register_script(FairShare.CLAIM)
        self._drop = connection.register_script(FairShare.DROP)
        self._adopt = connection.register_script(_ADOPT)

    def register(self, alive_ttl_s: float) -> None:
        with self.connection.pipeline() as pipe:
            pipe.sadd(self.keys.workers, self.worker)
            pipe.set(self.keys.alive(self.worker), "1", px=int(alive_ttl_s * 1000))
            pipe.execute()

    def claim(self, queue_keys: list[str], block_s: float) -> tuple[str, str] | None:
        """The next job (queue key, job id) of the first non-empty queue, moved into my list.

        With nothing waiting it blocks up to `block_s`: on the queue itself when there is one, else
        on their wake lists, which get a token per job enqueued (`queues.JobClient`), then looks again.
        """
        if len(queue_keys) == 1 and block_s > 0:
            # BLMOVE's timeout is a double (Redis >= 6); redis-py types it an int.
            job_id = self.connection.blmove(queue_keys[0], self.key, block_s, "LEFT", "RIGHT")  # type: ignore[arg-type]
            return (queue_keys[0], as_text(job_id)) if job_id is not None else None
        found = self._take(queue_keys)
        if found is not None or block_s <= 0:
            return found
        wake = [self.wake_key(key.removeprefix("rq:queue:")) for key in queue_keys]
        if self.connection.blpop(wake, block_s) is None:
            return None
        return self._take(queue_keys)

    def _take(self, queue_keys: list[str]) -> tuple[str, str] | None:
        found = self._claim(keys=[self.key, *queue_keys])
        return (found[0].decode(), found[1].decode()) if found else None

    def claim_job(self, block_s: float) -> tuple[str, str] | None:
        """The next job (queue key, job id) for this worker, users of a queue group taken in turn
        (`queues.FairShare`), moved into my list. With nothing to take it waits up to `block_s` on the
        wake list, then looks again."""
        found = self._take_fair(self.served)
        if found is not None or block_s <= 0:
            return found
        if self.connection.blpop([self.wake_key(queue) for queue in self.served], block_s) is None:
            return None
        return self._take_fair(self.served)

    def _take_fair(self, served: tuple[str, ...]) -> tuple[str, str] | None:
        found = self._fair_claim(keys=[self.key], args=self.fair.claim_args(served))
        return (found[0].decode(), found[1].decode()) if found else None

    def claim_more(self, queue: str, count: int) -> list[str]:
        """Up to `count` more waiting jobs of one queue, in fair order, without waiting (batching)."""
        if count <= 0:
            return []
        args = self.fair.claim_args((queue,))
        with self.connection.pipeline(transaction=False) as pipe:
            for _ in range(count):
                self._fair_claim(keys=[self.key], args=args, client=pipe)
            return [found[1].decode() for found in pipe.execute() if found]

    def drop(self, job_id: str, pipeline: redis.client.Pipeline | None = None) -> None:
        """Take a job off my list (it no longer runs here): in `pipeline`, the transaction that
        records its end, as EVAL (see queues/_events.py on scripts inside transactions)."""
        if pipeline is not None:
            pipeline.eval(FairShare.DROP, 1, self.key, self.fair.prefix, job_id)
        else:
            self._drop(keys=[self.key], args=[self.fair.prefix, job_id])

    def adopt(self, other: str, force: bool = False) -> list[str]:
        """Move another worker's list into mine if it is dead (or `force`); the ids moved."""
        keys = [self.keys.alive(other), self.keys.inflight(other), self.key, self.keys.workers]
        ids = self._adopt(keys=keys, args=[other, "1" if force else "0"])
        if ids is False or ids is None:
            return []
        if other != self.worker:
            _forget_rq_worker(self.connection, other)
        return [job_id.decode() for job_id in ids]

    def others(self) -> list[str]:
        names = (as_text(name) for name in self.connection.smembers(self.keys.workers))
        return sorted(name for name in names if name != self.worker)

    def alive(self, other: str) -> bool:
        return bool(self.connection.exists(self.keys.alive(other)))

    def settle(self, job_id: str, crashed: bool = True) -> JobError | None:
        """A job on my list that no one runs: requeued at the front of its queue, or failed and its
        session told. `crashed`: whether a worker died running it (else Redis went away)."""
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except Exception:  # noqa: BLE001 - a job hash that is gone or unreadable: nothing left to run
            self.drop(job_id)
            return None
        status = job.get_status(refresh=False)
        if status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.STOPPED):
            self.drop(job_id)  # it ended; the worker died before taking it off its list
            return None
        hung = self.connection.get(self.keys.hung(job_id))
        crashes = int(job.meta.get("crashes", 0)) + (1 if crashed and status == JobStatus.STARTED else 0)
        error = None
        if job.func_name == functions.LISTEN:
            # Back on the listen queue (the listener that takes it resumes from the stream's
            # checkpoint), unless it has killed workers too often.
            if crashes > self.max_crashes:
                error = JobError(code=ErrorCode.WORKER_LOST, message=LISTENER_LOST, retryable=True)
        elif job.func_name == functions.GENERATE and crashed:
            # Its tokens went out as they were decoded: a second run would say them again.
            error = JobError(code=ErrorCode.WORKER_LOST, message=GENERATOR_LOST, retryable=True)
        elif hung is not None:
            error = JobError(code=ErrorCode.TIMEOUT, message=as_text(hung), retryable=False)
        elif crashes > self.max_crashes:
            error = JobError(
                code=ErrorCode.WORKER_LOST,
                message=(
                    f"The worker running this job died {crashes} times while running it (a crash or running "
                    "out of memory), so it was not tried again. Try smaller input, or ask the operator to "
                    "check the worker logs."
                ),
                retryable=False,
            )
        job.meta["crashes"] = crashes
        registry = StartedJobRegistry(job.origin, connection=self.connection, serializer=JSONSerializer)
        members = cast("list[bytes]", self.connection.zrange(registry.key, 0, -1))  # no scores asked
        stale = [m for m in members if m.decode().split(":")[0] == job_id]
        with self.connection.pipeline() as pipe:
            if stale:
                pipe.zrem(registry.key, *stale)
            if error is None:
                job.set_status(JobStatus.QUEUED, pipeline=pipe)
                pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
                pipe.lpush(f"rq:queue:{job.origin}", job_id)
                pipe.rpush(self.wake_key(job.origin), 1)
            else:
                job.meta["error"] = error.model_dump(mode="json")
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
                job.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=error.message, pipeline=pipe)
                session_id = events_stream(job)
                if session_id is not None:  # the failure and its event go out together
                    payload = payloads.Failed(**error.model_dump())
                    failed = Event.of(payload, session_id=session_id, job_id=job_id, seq=0)
                    self.publisher.publish(failed, pipe)
            self.drop(job_id, pipe)
            pipe.execute()
        log.warning("job %s left unfinished: %s", job_id, "requeued" if error is None else f"failed ({error.code})")
        return error


def _forget_rq_worker(connection: redis.Redis, name: str) -> None:
    """Drop a dead worker's RQ registration, so health checks and rq-dashboard stop counting it."""
    key = f"rq:worker:{name}"
    queues = connection.hget(key, "queues")
    with connection.pipeline() as pipe:
        pipe.delete(key)
        pipe.srem("rq:workers", key)
        for queue in as_text(queues).split(",") if queues else []:
            pipe.srem(f"rq:workers:{queue}", key)
        pipe.execute()


def events_stream(job: Job) -> str | None:
    """Where a job's events go: the stream its payload named (`reply_to`), else its session's."""
    stream = job.meta.get("reply_to") or job.meta.get("session_id")
    return stream if isinstance(stream, str) else None
