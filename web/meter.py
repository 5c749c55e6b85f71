"""The one meter every job goes through before it is enqueued: chat turns, microphone streams,
REST (`/api/transcriptions`, `/api/speech`), the OpenAI-compatible routes and the CLI's path
through the app. Each job's cost is reserved against its user's budgets (and the turn's, and the
speaking member's) in the ledger first; a job a budget cannot cover, or a frozen user's, is refused
with `BudgetExceeded` (which says which budget and when it resets) and never enqueued. The worker
settles the reservation with what the job used; a job that will not run gives its hold back.

The app owns it (`Services.meter`), built from the settings whatever answers turns, so a council,
the echo responder and REST calls are held to the same limits. It also meters the audio users
store (uploads wait in Redis for a worker): a user may hold at most `blob_quota_bytes` of it, as
bytes stored in the last blob lifetime, so one user's uploads cannot fill Redis for everyone.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any

from council import Budgets, Payer
from queues import AsyncBlobStore, JobClient
from shared_schemas import ErrorCode, JobPayload, ListenJob, Refusal, SynthesisJob, TranscriptionJob


class QuotaExceeded(Refusal):
    """A user's stored audio would pass their quota: the message says how much and for how long."""

    code = ErrorCode.AUDIO_QUOTA
    retryable = True


# KEYS: this hour's and last hour's counters of a user's stored bytes. ARGV: the size, the quota,
# the counters' life. Counts the bytes in, unless they would pass the quota.
_STORE = """
local held = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(redis.call('GET', KEYS[2]) or '0')
if held + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return held end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return -1
"""


class Meter:
    def __init__(self, budgets: Budgets, jobs: JobClient, blobs: AsyncBlobStore, quota_bytes: int) -> None:
        self.budgets = budgets
        self.jobs = jobs
        self.blobs = blobs
        self.quota_bytes = quota_bytes
        self._store = blobs.connection.register_script(_STORE)

    async def store_audio(self, user: str, session_id: str, data: bytes, suffix: str = "") -> str:
        """Put a user's audio in the blob store, within their quota; its key."""
        ttl = self.blobs.settings.blob_ttl_s
        bucket = int(time.time()) // ttl
        keys = [f"{self.blobs.settings.key_prefix}:stored:{user}:{b}" for b in (bucket, bucket - 1)]
        held = await self._store(keys=keys, args=[len(data), self.quota_bytes, 2 * ttl])
        if int(held) >= 0:
            raise QuotaExceeded(
                f"You have stored {int(held) / 2**20:.0f} MiB of audio in the last {ttl // 60} minutes; the limit "
                f"is {self.quota_bytes / 2**20:.0f} MiB, and this would pass it. Wait for your files to be "
                "transcribed, or send less at once."
            )
        return await self.blobs.put(session_id, data, suffix)

    async def forget_audio(self, user: str, stored: dict[str, int]) -> None:
        """Audio stored for jobs that were then refused ({key: bytes}): deleted, its quota given back."""
        if not stored:
            return
        bucket = int(time.time()) // self.blobs.settings.blob_ttl_s
        async with self.blobs.connection.pipeline(transaction=False) as pipe:
            pipe.delete(*stored)
            pipe.decrby(f"{self.blobs.settings.key_prefix}:stored:{user}:{bucket}", sum(stored.values()))
            await pipe.execute()

    async def enqueue(self, job: JobPayload, queue: str | None = None, *, audio_bytes: int = 0) -> None:
        """Reserve `job`'s cost from its user's budgets, then enqueue it; raises BudgetExceeded
        (nothing enqueued) when a budget cannot cover it."""
        await self.enqueue_all([job], queue, audio_bytes=[audio_bytes])

    async def enqueue_all(
        self,
        jobs: Sequence[JobPayload],
        queue: str | None = None,
        *,
        audio_bytes: Sequence[int] | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> None:
        """Reserve every job's cost, then enqueue them all (and what `also` writes) in one
        transaction. A refusal, or Redis failing, leaves nothing enqueued and no hold taken."""
        held: list[str] = []
        try:
            for job, size in zip(jobs, audio_bytes or [0] * len(jobs), strict=True):
                await self._reserve(job, size)
                if isinstance(job, SynthesisJob | TranscriptionJob):
                    held.append(job.job_id)
            await self.jobs.aenqueue_all(jobs, queue, also)
        except BaseException:
            for job_id in held:
                await self.budgets.release_job(job_id)
            raise

    async def _reserve(self, job: JobPayload, audio_bytes: int) -> None:
        if isinstance(job, SynthesisJob | TranscriptionJob):
            await self.budgets.reserve_job(
                Payer(job.user or "anonymous", job.session_id, job.turn_id), job, audio_bytes
            )
        elif isinstance(job, ListenJob):
            # A stream's recognition is charged turn by turn as the listener settles it; a user who
            # may not spend is refused before the microphone opens.
            await self.budgets.check_user(job.user or "anonymous")

    async def release(self, job_id: str) -> None:
        """A reserved job that will not run (cancelled while queued): its hold goes back."""
        await self.budgets.release_job(job_id)
