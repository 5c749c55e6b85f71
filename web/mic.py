"""The app's end of a streamed microphone: one chat session's open `listen` stream.

Opening it enqueues a `listen` job (JSON, by name; a worker's listener takes it) and each binary
frame the page sends is appended to the stream's Redis entries (`queues.MicWriter`); the listener
decides where turns end and says so with events, which the chat session forwards. The app also
watches the listener: once a second, with a frame, it asks who holds the stream's lease. Its worker
renews the lease while the listener makes progress, however far behind real time it runs, so a
lease gone means the worker died (or its listener is stuck): the app then waits up to
`mic_resume_wait_s` (AppSettings) for another worker to resume the stream from its checkpoint (the
dead worker's job is put back on the listen queue when a live worker adopts it), and the person
speaks on. Only when no worker takes it in that time, or none took it within `CLAIM_WAIT_S` at the
start, does the stream fail as data, a `failed` event for its id that says what to do, and the page
opens a new one. Closing the stream stops the watching, never the listening: the listener still
decides every turn the stream holds.
"""

import logging
import time

from queues import MicWriter, mic
from shared_schemas import ErrorCode, Event, JobError, ListenJob, Refusal, new_stream_ids, payloads

from .services import Services

log = logging.getLogger(__name__)

CLAIM_WAIT_S = 10.0
CHECK_EVERY_S = 1.0

LOST = (
    "The voice worker listening to you stopped (it crashed or was restarted) and no other worker took your "
    "microphone within {wait:.0f} s. Speak again."
)
UNCLAIMED = (
    "No voice worker took your microphone within {wait:.0f} s: every worker is busy listening to others, or "
    "none is running. Try again in a moment; an operator can add workers or raise WORKER_LISTENERS."
)


class Mic:
    def __init__(self, services: Services, session_id: str, user: str, mode: str) -> None:
        self.services = services
        self.session_id = session_id
        self.user = user
        self.mode = mode
        self.stream_id, self.turn_prefix = new_stream_ids()
        self.writer = MicWriter(services.settings.queues, services.aredis, self.stream_id)
        self.opened_at = time.monotonic()
        self._checked_at = 0.0
        self._listener: str | None = None  # the worker that took the stream, once one has
        self._lost_at: float | None = None  # when its lease was seen gone (a resume is awaited)

    async def open(self) -> None:
        job = ListenJob(
            session_id=self.session_id,
            job_id=self.stream_id,
            stream_key=self.writer.keys.stream,
            mode=self.mode,
            turn_prefix=self.turn_prefix,
            user=self.user,
        )
        await self.services.meter.enqueue(job)  # a user who may not spend is refused here

    async def feed(self, pcm: bytes) -> JobError | None:
        """Append a frame; the stream's failure, when its listener is found gone."""
        now = time.monotonic()
        if now - self._checked_at < CHECK_EVERY_S:
            await self.writer.append(pcm)
            return None
        self._checked_at = now
        try:  # still within the user's budget (web/meter.py): else the stream closes, saying so
            await self.services.meter.listening(self.user, self.stream_id)
        except Refusal as exc:
            await self.writer.append(pcm)
            return JobError(code=exc.code, message=exc.message, retryable=exc.retryable)
        holder = await self.writer.append_and_ask(pcm)
        if holder is not None:
            if self._lost_at is not None:
                log.warning(
                    "microphone stream %s resumed by %s after %.1f s", self.stream_id, holder, now - self._lost_at
                )
            self._listener, self._lost_at = holder, None
            return None
        if self._listener is not None:
            wait = self.services.settings.mic_resume_wait_s
            if self._lost_at is None:
                log.warning(
                    "microphone stream %s: its listener on %s is gone; waiting for another",
                    self.stream_id,
                    self._listener,
                )
                self._lost_at = now
            elif now - self._lost_at > wait:
                return JobError(code=ErrorCode.WORKER_LOST, message=LOST.format(wait=wait), retryable=True)
            return None
        if now - self.opened_at > CLAIM_WAIT_S:
            return JobError(code=ErrorCode.WORKER_LOST, message=UNCLAIMED.format(wait=CLAIM_WAIT_S), retryable=True)
        return None

    async def close(self, gone: bool = False) -> None:
        """The person closed it (the turn under way ends now), or (`gone`) their connection dropped."""
        await self.writer.close(mic.GONE if gone else mic.END)
        await self._let_go()

    async def _let_go(self) -> None:
        """The stream's place goes back; a `listen` job no listener took is cancelled, not left behind."""
        await self.services.meter.streams.close(self.user, self.stream_id)
        if self._listener is None and await self.writer.listener() is None:
            await self.services.jobs.acancel(self.stream_id)

    async def fail(self, error: JobError) -> None:
        """Tell the session the stream failed: its ending, published once (a listener's own failure
        for the same stream, if it comes, is dropped as a repeat)."""
        await self.writer.abandon()
        await self._let_go()
        ending = payloads.Failed(**error.model_dump())
        failed = Event.of(ending, session_id=self.session_id, job_id=self.stream_id, seq=0)
        await self.services.publisher.publish(failed, once=True)
