"""One turn of a conversation: the user's words (typed, or spoken and transcribed), an answer
from the responder streamed as tokens, and speech for it sentence by sentence in each member's
voice. Everything a turn produces is an event in the session's stream, so a client that drops and
comes back sees all of it.

The turn is its user's: the responder meters its model calls against them, and each speech and
transcription job is reserved from their budgets before it is enqueued (the worker settles it)."""

import asyncio
import logging
import time
from typing import Any

import redis.exceptions

from council import LLMUnavailable, Responder, Step
from queues import log_context
from shared_schemas import (
    AudioFormat,
    ErrorCode,
    Event,
    Refusal,
    SentenceBuffer,
    SynthesisJob,
    TranscriptionJob,
    payloads,
    speech_job_id,
    transcript_job_id,
)

from . import metrics
from .errors import error_of
from .hold import Holds
from .services import Services

log = logging.getLogger(__name__)
# A listener publishes a turn's transcript within a recognition of deciding it; far past that, it died.
STREAMED_TRANSCRIPT_S = 30.0
TRANSCRIPT_LOST = "The voice worker that heard you stopped before it wrote down what you said. Say it again."
# An answer's first clause of at least this many words is spoken at its comma, not at the end of
# its sentence: a long first sentence is heard sooner (SentenceBuffer's first_clause).
FIRST_CLAUSE_WORDS = 4


class TurnRunner:
    def __init__(self, services: Services, session_id: str, responder: Responder, user: str = "anonymous") -> None:
        self.services = services
        self.session_id = session_id
        self.responder = responder
        self.user = user
        self._pending: dict[str, tuple[str, float]] = {}  # job id -> (kind, enqueued at)
        self._seqs: dict[str, int] = {}  # turn id -> the seq of its next event
        # perf_counter() when each turn's first sentence went to be spoken (for time to first audio).
        self.first_sentence_at: dict[str, float] = {}
        self.questions: dict[str, str] = {}  # what each turn asked (typed, or as transcribed)
        self.holds = Holds()  # tentative spoken turns: their sound waits for `turn_confirmed`
        self.reasons: dict[str, str] = {}  # why a turn is being cancelled, when not a plain stop
        self.began: set[str] = set()  # the turns whose run began

    async def publish(self, turn_id: str, payload: payloads.Payload) -> Event:
        seq = self._seqs.get(turn_id, 0)
        self._seqs[turn_id] = seq + 1
        return await self.services.publisher.publish(
            Event.of(payload, session_id=self.session_id, job_id=turn_id, seq=seq)
        )

    def adopt(self, started: Event) -> None:
        """A turn a listener started (`started` is its `turn_started`): this runner's events for it
        go on after that one (or after those it published already, such as `echo_checked`)."""
        if not isinstance(started.payload, payloads.TurnStarted):
            raise ValueError(f"a turn is adopted from its turn_started, not {started.type}")
        self._seqs[started.job_id] = max(self._seqs.get(started.job_id, 0), started.next_seq)

    async def run(
        self,
        turn_id: str,
        voice: str,
        text: str | None = None,
        audio: bytes | None = None,
        audio_format: AudioFormat | None = None,
        hear_members: bool | None = None,
        started: Event | None = None,
        joined: str | None = None,
        confirm_ms: int = 0,
    ) -> None:
        """Run a turn to its end; on cancellation, cancel its queued speech and say so. The turn is
        recorded as open while it runs, so that it still ends if this process dies (open_turns.py).

        `started`: the turn was spoken into a streamed microphone, and a listener decided it ended:
        this is its `turn_started` (the turn's events go on after it), and its transcript follows
        it in the stream.
        `joined`: what the turn it interrupted asked, before any of its answer was heard: this
        turn answers both (the person had only paused).
        `confirm_ms`: the listener decided the turn tentatively; its sound is held until it is
        confirmed (see hold.py). 0: it stands already."""
        with log_context(session_id=self.session_id, job_id=turn_id):
            try:
                await self.services.open_turns.opened(turn_id, self.session_id)
                await self._run(turn_id, voice, text, audio, audio_format, hear_members, started, joined, confirm_ms)
            finally:
                self.holds.forget(turn_id)
                await asyncio.shield(self.services.open_turns.closed(turn_id))

    async def _run(
        self,
        turn_id: str,
        voice: str,
        text: str | None,
        audio: bytes | None,
        audio_format: AudioFormat | None,
        hear_members: bool | None,
        started: Event | None = None,
        joined: str | None = None,
        confirm_ms: int = 0,
    ) -> None:
        after = None
        if started is not None:
            self.adopt(started)
            after = started.id
        # From here a cancellation is said by this run (`turn_cancelled`); before, by whoever
        # cancelled it (chat.py: a listener's turn cancelled before it began still ends).
        self.began.add(turn_id)
        try:
            async with self.services.hub.subscribe(self.session_id, after=after) as sub:
                if started is None:
                    begun = payloads.TurnStarted(input="voice" if audio else "text", text=text)
                    await self.publish(turn_id, begun)
                if (down := await self.services.llm_down()) is not None:
                    # Refused at once, saying what to do: not three drop-outs and an error, and no
                    # transcription of a question nobody can answer.
                    raise LLMUnavailable(down)
                if started is not None:
                    text = await self._streamed_transcript(turn_id, sub)
                if audio is not None:
                    text = await self._transcribe(turn_id, audio, audio_format, sub)
                if not text or not text.strip():
                    await self.publish(turn_id, payloads.TurnDone(status="empty"))
                    return
                if joined:
                    text = f"{joined} {text}"
                    await self.publish(turn_id, payloads.Joined(text=text))
                self.questions[turn_id] = text
                unspoken = await self._answer(turn_id, text, voice, hear_members, sub, confirm_ms)
                done = payloads.TurnDone(status="done")
                if unspoken:  # answered, but some of it could not be spoken: say so, and why
                    done = payloads.TurnDone(status="done", speech_failed=len(unspoken), error=unspoken[0])
                await self.publish(turn_id, done)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancelled(turn_id))
            raise
        except Exception as exc:  # noqa: BLE001 (whatever it met, the turn ends saying so; a bug is logged)
            error = payloads.Failed.model_validate(error_of(exc))
            log.info("turn %s not answered: %s (%s)", turn_id, error.message, error.code)
            await self.publish(turn_id, payloads.TurnDone(status="failed", error=error))

    async def checked(self, turn_id: str, checked: payloads.EchoChecked) -> None:
        """Say what words heard over an answer were (`echo_checked`; see echo.py)."""
        await self.publish(turn_id, checked)

    async def cancelled(self, turn_id: str) -> None:
        """End a listener's turn cancelled before it began to run: nothing of it was enqueued."""
        await self.publish(turn_id, self._cancel_payload(turn_id, []))

    async def end_unanswered(self, turn_id: str, done: payloads.TurnDone) -> None:
        """End a listener's turn that is not answered (adopted: its `turn_started` was the listener's)."""
        await self.publish(turn_id, done)

    async def _transcribe(self, turn_id: str, audio: bytes, audio_format: AudioFormat | None, sub: Any) -> str:
        key = await self.services.meter.store_audio(self.user, self.session_id, audio)
        job = TranscriptionJob(
            session_id=self.session_id,
            job_id=transcript_job_id(turn_id),
            audio_key=key,
            format=audio_format,
            user=self.user,
            turn_id=turn_id,
        )
        await self._enqueue(job, len(audio))
        return _words(await self._until_done(sub, {job.job_id}))

    async def _streamed_transcript(self, turn_id: str, sub: Any) -> str:
        """The transcript the listener publishes after deciding the turn (at once, or when the last
        recognition is done); a listener that dies in between fails the turn saying so."""
        try:
            async with asyncio.timeout(STREAMED_TRANSCRIPT_S):
                event = await self._until_done(sub, {transcript_job_id(turn_id)})
        except TimeoutError:
            raise TurnFailed(transcript_lost()) from None
        return _words(event)

    async def _answer(
        self, turn_id: str, text: str, voice: str, hear_members: bool | None, sub: Any, confirm_ms: int = 0
    ) -> list[payloads.Failed]:
        """Stream the answer and speak it; the errors of the sentences that could not be spoken.
        A tentative turn's sentences wait (in order) until it is confirmed; its tokens do not."""
        buffers: dict[str, SentenceBuffer] = {}
        voices: dict[str, str] = {}
        answers: dict[str, str] = {}
        jobs: set[str] = set()
        held: list[tuple[str, str, str]] = []  # (member, voice, sentence) not yet sent to be spoken
        release = None
        if confirm_ms > 0 and not self.holds.confirmed(turn_id):
            release = asyncio.create_task(self.holds.wait(turn_id, confirm_ms), name=f"{turn_id}-hold")

        async def flush() -> None:
            if release is None or release.done():
                while held:
                    jobs.add(await self._speak(turn_id, *held.pop(0), len(jobs)))

        try:
            replies = self.responder.answer(
                self.session_id, turn_id, text, voice, hear_members=hear_members, user=self.user
            )
            async for reply in replies:
                if isinstance(reply, Step):
                    await self.publish(turn_id, reply.payload)
                    # A member's answer is whole: the rest of what it said is spoken now, even
                    # without a sentence's end (a short model cut at its length), not after the turn.
                    done = reply.payload.member if isinstance(reply.payload, payloads.MemberDone) else None
                    if done is not None and (buffer := buffers.pop(done, None)) is not None and done in voices:
                        held.extend((done, voices[done], sentence) for sentence in buffer.flush())
                        await flush()
                    continue
                await self.publish(turn_id, payloads.Token(member=reply.member, text=reply.text))
                await flush()  # confirmed meanwhile: what was held goes now
                answers[reply.member] = answers.get(reply.member, "") + reply.text
                voices[reply.member] = reply.voice
                if not reply.speak:
                    continue
                cutter = buffers.setdefault(reply.member, SentenceBuffer(first_clause=FIRST_CLAUSE_WORDS))
                sentences = cutter.feed(reply.text)
                held.extend((reply.member, reply.voice, sentence) for sentence in sentences)
                await flush()
            for member, buffer in buffers.items():
                held.extend((member, voices[member], sentence) for sentence in buffer.flush())
            await flush()
            for member, answer in answers.items():
                await self.publish(turn_id, payloads.Message(member=member, text=answer.strip()))
            if release is not None and held and not await release:
                log.warning("turn %s was neither confirmed nor continued: spoken anyway", turn_id)
            await flush()
        finally:
            if release is not None:
                release.cancel()
        unspoken = []
        while jobs:
            ended = await self._until_done(sub, jobs)
            jobs.discard(ended.job_id)
            if isinstance(ended.payload, payloads.Failed):
                unspoken.append(ended.payload)
        return unspoken

    async def _speak(self, turn_id: str, member: str, voice: str, sentence: str, index: int) -> str:
        job = SynthesisJob(
            session_id=self.session_id,
            job_id=speech_job_id(turn_id, index),
            text=sentence,
            voice=voice,
            member=member,
            turn_id=turn_id,
            index=index,
            user=self.user,
        )
        if index == 0:
            self.first_sentence_at[turn_id] = time.perf_counter()
        await self._enqueue(job)
        return job.job_id

    async def _enqueue(self, job: TranscriptionJob | SynthesisJob, audio_bytes: int = 0) -> None:
        # Reserved from the user's budgets first: BudgetExceeded ends the turn, saying which.
        self._pending[job.job_id] = (job.kind, time.perf_counter())
        try:
            await self.services.meter.enqueue(job, audio_bytes=audio_bytes)
        except BaseException:
            self._pending.pop(job.job_id, None)
            raise

    async def _until_done(self, sub: Any, job_ids: set[str]) -> Event:
        while True:
            event: Event = await sub.get()
            if event.job_id in job_ids and event.terminal:
                if event.job_id in self._pending:  # a job this runner enqueued (not a listener's)
                    kind, started = self._pending.pop(event.job_id)
                    outcome = "failed" if isinstance(event.payload, payloads.Failed) else "done"
                    metrics.JOBS.labels(kind, outcome).inc()
                    metrics.JOB_LATENCY.labels(kind).observe(time.perf_counter() - started)
                return event

    async def _cancelled(self, turn_id: str) -> None:
        """Cancel the turn's jobs still queued (running ones finish) and say which."""
        pending, self._pending = sorted(self._pending), {}
        cancelled = []
        for job_id in pending:
            try:
                if await self.services.jobs.acancel(job_id):
                    cancelled.append(job_id)
                    await self.services.meter.release(job_id)  # it will not run: its hold goes back
            except redis.exceptions.RedisError as exc:
                log.warning("could not cancel job %s of turn %s: %s", job_id, turn_id, exc)
        await self.publish(turn_id, self._cancel_payload(turn_id, cancelled))

    def _cancel_payload(self, turn_id: str, cancelled: list[str]) -> payloads.TurnCancelled:
        if reason := self.reasons.pop(turn_id, None):  # `continued` (nothing of it was spoken) or `barge_in`
            return payloads.TurnCancelled(cancelled_jobs=cancelled, reason=reason)
        return payloads.TurnCancelled(cancelled_jobs=cancelled)


def transcript_lost() -> payloads.Failed:
    """A listener's turn whose transcript never came: its worker died after deciding it."""
    return payloads.Failed(code=ErrorCode.WORKER_LOST, message=TRANSCRIPT_LOST, retryable=True)


def _words(event: Event) -> str:
    """What a transcription's ending says: its words, or its failure (which fails the turn)."""
    if isinstance(event.payload, payloads.Failed):
        raise TurnFailed(event.payload)
    if not isinstance(event.payload, payloads.Transcript):
        raise TurnFailed(payloads.Failed(code=ErrorCode.INTERNAL, message=f"a transcription ended with {event.type}"))
    return event.payload.text


class TurnFailed(Refusal):
    """A job the turn waited for failed: its `failed` event's error, which the turn ends with as the
    worker said it (`retryable` too: the worker knows whether its job would fail again)."""

    status = 502  # the worker's job failed, not the request

    def __init__(self, error: payloads.Failed) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.error = error

    @property
    def retryable(self) -> bool:
        return self.error.retryable

    def as_error(self) -> dict[str, Any]:
        return self.error.model_dump(mode="json")
