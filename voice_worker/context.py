"""What a worker hands its jobs: engines, blob store and event publisher, built once at start."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from queues import BlobStore, EventPublisher, JobEvents
from shared_schemas import GenerationJob, Transcript

from .engines import Engines
from .settings import WorkerSettings


@dataclass(frozen=True)
class Prefetched:
    """A transcript made in a batch before its job ran, with the job's share of the batch's compute
    (by audio duration), which its metering charges."""

    transcript: Transcript
    cpu_ms: int
    wall_ms: int
    batch: int  # how many files shared the forward pass


@dataclass
class WorkerContext:
    settings: WorkerSettings
    connection: redis.Redis
    engines: Engines | None
    blobs: BlobStore
    publisher: EventPublisher
    # The events of the job running now, so that a failure continues its numbering.
    current_events: JobEvents | None = None
    # Transcripts made ahead in one batch for jobs this worker took together (see worker.py).
    prefetched: dict[str, Prefetched] = field(default_factory=dict)
    # Generation jobs this worker took with another one, by that one's id: it decodes them all in
    # one batch (worker.py, jobs.generate); then each one's part of the batch, by its own id.
    companions: dict[str, list[GenerationJob]] = field(default_factory=dict)
    generations: dict[str, Any] = field(default_factory=dict)  # generation.Outcome
    # Takes up to n more generation jobs waiting on `llm` to join a batch under way; each still
    # runs as its own RQ job after the one decoding (the worker sets it; see worker.py).
    claim_generations: Callable[[int], list[GenerationJob]] | None = None

    def events_for(self, session_id: str, job_id: str) -> JobEvents:
        if self.current_events is None or self.current_events.job_id != job_id:
            # The job's ending goes out with the record of its end (worker.py, cleanup_execution).
            self.current_events = JobEvents(self.publisher, session_id, job_id, hold_ending=True)
        return self.current_events

    @classmethod
    def build(cls, settings: WorkerSettings, connection: redis.Redis, engines: Engines | None) -> "WorkerContext":
        return cls(
            settings=settings,
            connection=connection,
            engines=engines,
            blobs=BlobStore(settings.queues, connection),
            publisher=EventPublisher(settings.queues, connection),
        )


_current: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _current
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context: jobs run inside voice_worker's VoiceWorker")
    return _current
