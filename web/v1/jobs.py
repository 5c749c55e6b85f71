"""The voice jobs of one /v1 request, through the app's meter, and their events as they come.

Every job is reserved against its user's budgets and enqueued by `Services.meter` (one
transaction for all of a request's jobs: a refusal, `BudgetExceeded`, leaves none queued), the
same meter the chat, the batch page and /api/speech go through. A request that ends early (its
client left, a job failed, nothing came in time) cancels its jobs still queued and gives their
holds back, so a client that hangs up pays for nothing it did not get.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence

import redis.exceptions

from shared_schemas import ErrorCode, Event, SynthesisJob, TranscriptionJob, payloads

from ..services import Services
from .errors import OpenAIError, from_job

log = logging.getLogger(__name__)

Job = SynthesisJob | TranscriptionJob


async def run(
    s: Services,
    jobs: Sequence[Job],
    *,
    timeout: float,
    audio_bytes: Sequence[int] | None = None,
    queue: str | None = None,
) -> AsyncGenerator[tuple[int, Event], None]:
    """(job's place in `jobs`, event) for every event of the jobs, all of one session, on the
    realtime queue (or `queue`), until each has ended. A failed job raises its error (a bad input's names
    the request field at fault); `timeout` seconds with no event raise 504."""
    places = {job.job_id: n for n, job in enumerate(jobs)}
    running: set[str] = set()
    try:
        async with s.hub.subscribe(jobs[0].session_id) as sub:
            await s.meter.enqueue_all(jobs, queue or s.settings.queues.realtime_queue, audio_bytes=audio_bytes)
            running.update(places)
            while running:
                try:
                    async with asyncio.timeout(timeout):
                        event = await sub.get()
                except TimeoutError:
                    raise OpenAIError(
                        504,
                        f"No voice worker finished the job within {timeout:g} s; it was cancelled if it had not "
                        "started. Try again, or with less audio or text.",
                        code=ErrorCode.TIMEOUT,
                    ) from None
                if event.job_id not in running:
                    continue
                if event.terminal:
                    running.discard(event.job_id)
                if isinstance(event.payload, payloads.Failed):
                    raise from_job(event.payload.model_dump())
                yield places[event.job_id], event
    finally:
        if running:
            await asyncio.shield(_cancel(s, sorted(running)))


async def _cancel(s: Services, job_ids: list[str]) -> None:
    """Cancel the jobs still queued and give their holds back; a running transcription is asked
    to stop at the end of its piece (nobody waits for it), anything else finishes."""
    for job_id in job_ids:
        try:
            if await s.jobs.astop(job_id) == "canceled":
                await s.meter.release(job_id)
        except redis.exceptions.RedisError as exc:
            log.warning("could not cancel job %s: %s", job_id, exc)
