"""Generation for one batch of jobs: each answer's pieces out as `token` events as they are decoded,
each job's stop asked between two tokens.

The worker takes up to WORKER_LLM_BATCH waiting generation jobs at once (worker.py); the first to
run decodes them all in one batch with the language model they name (`generate_together`), and
takes in those enqueued while it decodes, between two tokens, during the batch's first
WORKER_LLM_JOIN_TOKENS tokens (`join`; jobs.generate); each job then ends on its own with its
`generated` event, which rides the transaction that records the job's end (worker.py,
cleanup_execution). A job is asked to stop with `JobClient.stop`, which
sets its cancel key: one pipelined EXISTS per token step, for every job still decoding.
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from queues import JobEvents, QueueSettings
from shared_schemas import GenerationJob, JobError, payloads

from .llm import LLM, Generated, Request


@dataclass
class Outcome:
    """A job's part of a batch: its events (numbered on from its tokens), its result or the batch's
    error, and its share of the batch's compute (by tokens)."""

    job: GenerationJob
    events: JobEvents
    result: Generated | None = None
    error: JobError | None = None
    cpu_ms: int = 0
    wall_ms: int = 0
    batch: int = 1


def generate_together(
    jobs: Sequence[GenerationJob],
    events: Sequence[JobEvents],
    llm: LLM,
    connection: redis.Redis,
    settings: QueueSettings,
    join: Callable[[int], Sequence[tuple[GenerationJob, JobEvents]]] | None = None,
) -> list[Generated]:
    """Decode the jobs in one batch; one result per job, in order, then one per job that `join`
    gave (asked between two tokens for up to the room left), in the order given."""
    jobs, events = list(jobs), list(events)

    def on_piece(index: int, text: str) -> None:
        events[index].emit(payloads.Token(text=text, member=jobs[index].member))

    def stopped(active: Sequence[int]) -> Collection[int]:
        with connection.pipeline(transaction=False) as pipe:
            for index in active:
                pipe.exists(settings.cancel_key(jobs[index].job_id))
            asked = pipe.execute()
        return [index for index, flag in zip(active, asked, strict=True) if flag]

    def joined(room: int) -> list[Request]:
        fresh = join(room) if join is not None else ()
        for job, job_events in fresh:
            jobs.append(job)
            events.append(job_events)
        return [request(job) for job, _ in fresh]

    return llm.generate_many([request(job) for job in jobs], on_piece, stopped, joined)


def request(job: GenerationJob) -> Request:
    return Request(job.messages, job.max_tokens, job.temperature)


def body(job: GenerationJob, result: Generated, llm_name: str) -> dict[str, Any]:
    """The `generated` event's payload (and the job's RQ result)."""
    return {
        "text": result.text,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "finish_reason": result.finish_reason,
        "model": job.model,
        "engine": llm_name,
        "first_token_ms": result.first_token_ms,
        "tokens_per_s": result.tokens_per_s,
    }
