"""What a worker hands its jobs: engines, blob store and event publisher, built once at start."""

from dataclasses import dataclass, field

import redis

from queues import BlobStore, EventPublisher, JobEvents
from shared_schemas import Transcript

from .engines import Engines
from .settings import WorkerSettings


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
    prefetched: dict[str, Transcript] = field(default_factory=dict)

    def events_for(self, session_id: str, job_id: str) -> JobEvents:
        if self.current_events is None or self.current_events.job_id != job_id:
            self.current_events = JobEvents(self.publisher, session_id, job_id)
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
