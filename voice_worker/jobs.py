"""The job functions RQ runs, by these names (see `queues.functions`).

Each takes the payload dict the app enqueued, runs with the context the worker built at start,
reports through events and returns a plain dict. Failures raise; the worker turns them into a
`failed` event and RQ's failed status (see `worker.py`).

A long transcription runs in pieces (`transcription.py`): between two, `_between` sends it back to
its queue when work this worker serves first is waiting or its slice is over (`Paused`), or
ends it when it was cancelled (`Cancelled`); the worker handles both (worker.py).

A generation job decodes, in one batch, itself and the generation jobs the worker took with it
(`generation.py`); each of those then ends with its part of the batch, made before it ran.

Each transcription, synthesis and generation job is metered: its compute time (CPU seconds of this process,
or wall seconds on a GPU), the audio it heard or made and the characters it spoke go into the
ledger against the job's user, member and turn, settling the hold the app took when it enqueued
the job. Budgets are checked by the app before it enqueues; here the ledger only records. A
generation records its compute only (kind `llm`, item its model): the app charges its tokens from
the counts of its `generated` event.
"""

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions
from rq import Queue, get_current_job

from billing import Charge, Ledger, Refused
from queues import JobEvents
from shared_schemas import ErrorCode, GenerationJob, PingJob, SynthesisJob, TranscriptionJob, payloads

from . import generation, synthesis, transcription
from .context import WorkerContext, current
from .engines import Engines
from .errors import VoiceError, job_error
from .llm import LLM
from .outage import REDIS_DOWN_OR_FULL

log = logging.getLogger(__name__)


def ping(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = current()
    job = PingJob.model_validate(payload)
    ctx.events_for(job.session_id, job.job_id).emit(payloads.Pong())
    return {"kind": "pong"}


def listen(payload: dict[str, Any]) -> dict[str, Any]:
    """Listen jobs are run by a worker's listeners (`listening/pool.py`), which take them from the
    listen queue themselves; one that reached the job loop (requeued by hand onto another queue)
    is refused rather than tie the loop up for as long as a microphone stays open."""
    raise VoiceError(
        ErrorCode.INVALID_PAYLOAD,
        "A listen job runs on the listen queue, where the workers' listeners take it; open the microphone again.",
    )


def transcribe(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = current()
    job = TranscriptionJob.model_validate(payload)
    events = ctx.events_for(job.session_id, job.job_id)
    engines = _engines()
    stt = engines.recognizer()
    queues = ctx.settings.queues
    pieces = transcription.PieceLog(
        ctx.connection, f"{queues.key_prefix}:pieces:{job.job_id}", queues.blob_ttl_s, queues.cancel_key(job.job_id)
    )
    with _metered(ctx, job, "stt", stt) as used:
        ready = ctx.prefetched.pop(job.job_id, None)  # recognized in a batch with others (worker.py)
        if ready is not None:
            result = ready.transcript
            used.cpu_ms, used.wall_ms = ready.cpu_ms, ready.wall_ms
            others = ready.batch - 1
            used.notes.append(f"batched with {others} other file{'s' if others > 1 else ''}")
        else:
            try:
                between = _between(ctx)
                result = transcription.transcribe(job, engines, ctx.blobs, events, _save_progress, pieces, between)
            except transcription.Cancelled:
                pieces.clear()
                raise
        used.audio_ms = round(result.duration_s * 1000)
    body = result.model_dump(mode="json")
    events.emit(payloads.Transcript(**result.model_dump()))
    return body


def synthesize(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = current()
    job = SynthesisJob.model_validate(payload)
    events = ctx.events_for(job.session_id, job.job_id)
    engines = _engines()
    with _metered(ctx, job, "tts", engines.voices.get(job.voice)) as used:
        speech = synthesis.synthesize(job, engines, ctx.blobs, events)
        used.audio_ms = round(speech.duration_s * 1000)
        used.chars = sum(len(clip.text) for clip in speech.clips if clip.sentence_done)  # once a sentence
    return speech.model_dump(mode="json")


def generate(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = current()
    job = GenerationJob.model_validate(payload)
    engines = _engines()
    # Decoded in a batch another job ran: taken before metering, which may refuse this job.
    outcome = ctx.generations.pop(job.job_id, None)
    with _metered(ctx, job, "llm", engines.llms.get(job.model), item=job.model) as used:
        if outcome is None:
            outcome = _generate_batch(ctx, job, engines)
        ctx.current_events = outcome.events  # its tokens' numbering goes on
        used.own_time = False
        used.cpu_ms, used.wall_ms = outcome.cpu_ms, outcome.wall_ms
        if outcome.batch > 1:
            others = outcome.batch - 1
            used.notes.append(f"batched with {others} other generation{'s' if others > 1 else ''}")
        if outcome.error is not None:
            raise VoiceError(outcome.error.code, outcome.error.message)
        assert outcome.result is not None
        if outcome.result.finish_reason == "cancelled":
            used.notes.append("cancelled")
    ctx.connection.delete(ctx.settings.queues.cancel_key(job.job_id))
    body = generation.body(job, outcome.result, engines.llm_for(job.model).name)
    outcome.events.emit(payloads.Generated(**body))
    return body


def _generate_batch(ctx: WorkerContext, first: GenerationJob, engines: Engines) -> "generation.Outcome":
    """Decode `first` and the jobs taken with it that ask the same model, in one batch, with those
    that join it while it decodes; keep the others' parts for when they run. Raises (for `first`)
    what the batch raised; the others get its error."""
    companions = ctx.companions.pop(first.job_id, [])
    engine = engines.llm_for(first.model)
    _check_fits(engine, first)
    ledger = Ledger(ctx.connection, ctx.settings.queues.key_prefix)

    def admits(job: GenerationJob) -> bool:
        """Whether `job` decodes in this batch; else it runs alone, in its turn (and meets its own
        error there, or is refused when it runs)."""
        if job.model != first.model or not _fits(engine, job):
            return False
        try:
            ledger.check(job.user or "anonymous", job.member)
        except Refused:
            return False
        return True

    batch = [first]
    batch += [job for job in companions if len(batch) < engine.capabilities.max_batch and admits(job)]
    events = [ctx.events_for(first.stream, first.job_id)]
    events += [JobEvents(ctx.publisher, job.stream, job.job_id, hold_ending=True) for job in batch[1:]]
    asked = 0

    def join(room: int) -> list[tuple[GenerationJob, JobEvents]]:
        """Jobs enqueued since the batch began, while it is young (WORKER_LLM_JOIN_TOKENS)."""
        nonlocal asked
        asked += 1
        if ctx.claim_generations is None or asked > ctx.settings.llm_join_tokens:
            return []
        fresh = [
            (job, JobEvents(ctx.publisher, job.stream, job.job_id, hold_ending=True))
            for job in ctx.claim_generations(room)
            if admits(job)
        ]
        batch.extend(job for job, _ in fresh)
        events.extend(job_events for _, job_events in fresh)
        return fresh

    cpu, wall = time.process_time(), time.perf_counter()
    try:
        results = generation.generate_together(
            list(batch), list(events), engine, ctx.connection, ctx.settings.queues, join
        )
    except REDIS_DOWN_OR_FULL:
        raise  # not the jobs' failure: each runs again once Redis is back (its events are stored once)
    except BaseException as exc:
        error = job_error(exc)
        for job, job_events in zip(batch[1:], events[1:], strict=True):
            ctx.generations[job.job_id] = generation.Outcome(job, job_events, error=error, batch=len(batch))
        raise
    cpu_ms, wall_ms = (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000
    outcomes = [generation.Outcome(job, ev, batch=len(batch)) for job, ev in zip(batch, events, strict=True)]
    tokens = [r.input_tokens + r.output_tokens for r in results]
    total = sum(tokens) or 1
    for outcome, result, used in zip(outcomes, results, tokens, strict=True):
        outcome.result = result
        outcome.cpu_ms, outcome.wall_ms = round(cpu_ms * used / total), round(wall_ms * used / total)
    for outcome in outcomes[1:]:
        ctx.generations[outcome.job.job_id] = outcome
    return outcomes[0]


def _fits(engine: LLM, job: GenerationJob) -> bool:
    return engine.prompt_tokens(generation.request(job)) < engine.capabilities.context_tokens


def _check_fits(engine: LLM, job: GenerationJob) -> None:
    tokens, context = engine.prompt_tokens(generation.request(job)), engine.capabilities.context_tokens
    if tokens >= context:
        raise VoiceError(
            ErrorCode.TEXT_TOO_LONG,
            f"The conversation is {tokens} tokens; the model {job.model!r} reads at most {context} with its answer. "
            "Send fewer or shorter messages.",
        )


@dataclass
class Used:
    """What a job used besides its time, filled in by the job as it learns it."""

    audio_ms: int = 0
    chars: int = 0
    # Compute done for the job before it started: its share of a batch it was recognized in.
    cpu_ms: int = 0
    wall_ms: int = 0
    # False: the job's compute is only `cpu_ms` and `wall_ms` (its share of a batch it ran with others).
    own_time: bool = True
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _metered(
    ctx: WorkerContext,
    job: TranscriptionJob | SynthesisJob | GenerationJob,
    kind: str,
    engine: Any,
    item: str | None = None,
) -> Iterator[Used]:
    """Time the job and record it in the ledger when it ends, failed or not (the time was spent).
    A user (or member) an operator froze after the app reserved the job: it does not run."""
    ledger = Ledger(ctx.connection, ctx.settings.queues.key_prefix)
    try:
        ledger.check(job.user or "anonymous", getattr(job, "member", None))
    except Refused as exc:
        ledger.release(job.job_id)
        whose = "Your budget" if exc.scope == "user" else f"{exc.name}'s budget"
        raise VoiceError(
            ErrorCode.BUDGET_EXCEEDED, f"{whose} was frozen by an operator, so this job did not run."
        ) from None
    used = Used()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield used
    except transcription.Paused:
        used.notes.append("paused between pieces; goes on in another run")
        raise
    except transcription.Cancelled:
        used.notes.append("cancelled")
        raise
    except BaseException:
        used.notes.append("failed")
        raise
    finally:
        own = used.own_time
        cpu_ms = (round((time.process_time() - cpu) * 1000) if own else 0) + used.cpu_ms
        wall_ms = (round((time.perf_counter() - wall) * 1000) if own else 0) + used.wall_ms
        gpu = "cuda" in str(getattr(engine, "device", "cpu"))
        charge = Charge(
            kind=kind,
            item=item or str(getattr(engine, "name", "unknown")),
            user=job.user or "anonymous",
            member=getattr(job, "member", None),
            session_id=job.session_id,
            turn_id=job.turn_id,
            ref=job.job_id,
            note=", ".join(used.notes) or None,
            compute_ms=wall_ms if gpu else cpu_ms,
            cpu_ms=cpu_ms,
            gpu_ms=wall_ms if gpu else 0,
            audio_ms=used.audio_ms,
            chars=used.chars,
            calls=1,
        )
        try:
            ledger.settle(job.job_id, charge)
        except REDIS_DOWN_OR_FULL as exc:  # the outage the job itself met: it is waited out where it is caught
            log.warning("could not record job %s in the ledger: redis unavailable (%s)", job.job_id, exc)
        except redis.exceptions.RedisError:  # the job's work stands; the ledger misses one entry
            log.exception("could not record job %s in the ledger", job.job_id)


def _between(ctx: WorkerContext) -> Callable[[], None] | None:
    """What a long transcription asks after each piece: it is cancelled (raises Cancelled), work
    waits in a queue this worker serves before the job's own, or the run has had its slice (raise
    Paused), or it goes on. One round trip, on RQ's lists (every waiting job is in them)."""
    rq_job = get_current_job()
    if rq_job is None:
        return None
    served = ctx.settings.queue_names
    before = served[: served.index(rq_job.origin)] if rq_job.origin in served else ()
    keys = [Queue.redis_queue_namespace_prefix + name for name in before]
    slice_s = min(ctx.settings.slice_s, (rq_job.timeout or Queue.DEFAULT_TIMEOUT) / 2)
    cancel_key = ctx.settings.queues.cancel_key(rq_job.id)
    began = time.monotonic()

    def between() -> None:
        with ctx.connection.pipeline(transaction=False) as pipe:
            pipe.exists(cancel_key)
            for key in keys:
                pipe.llen(key)
            cancelled, *waiting = pipe.execute()
        if cancelled:
            raise transcription.Cancelled("cancelled while it ran")
        if any(waiting):
            names = [name for name, count in zip(before, waiting, strict=True) if count]
            raise transcription.Paused(f"work waits in {', '.join(names)}")
        if time.monotonic() - began >= slice_s:
            raise transcription.Paused(f"this run has had its {slice_s:g} s")

    return between


def _save_progress(fraction: float) -> None:
    """Progress where RQ keeps job data, for status pages and rq-dashboard."""
    job = get_current_job()
    if job is not None:
        job.meta["progress"] = round(fraction, 3)
        job.save_meta()


def _engines() -> Engines:
    engines = current().engines
    if engines is None:
        raise RuntimeError("this worker was started without engines")
    return engines
