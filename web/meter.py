"""The one meter every job goes through before it is enqueued: chat turns, microphone streams,
REST (`/api/transcriptions`, `/api/speech`), the OpenAI-compatible routes and the CLI's path
through the app. Each job's cost is reserved against its user's budgets (and the turn's, and the
speaking member's) in the ledger first; a job a budget cannot cover, or a frozen user's, is refused
with `BudgetExceeded` (which says which budget and when it resets) and never enqueued. The worker
settles the reservation with what the job used; a job that will not run gives its hold back.

The app owns it (`Services.meter`), built from the settings whatever answers turns, so a council,
the echo responder and REST calls are held to the same limits.
"""

from collections.abc import Callable, Sequence
from typing import Any

from council import Budgets, Payer
from queues import JobClient
from shared_schemas import JobPayload, ListenJob, SynthesisJob, TranscriptionJob


class Meter:
    def __init__(self, budgets: Budgets, jobs: JobClient) -> None:
        self.budgets = budgets
        self.jobs = jobs

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
