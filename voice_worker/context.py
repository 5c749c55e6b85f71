"""What a worker hands its jobs: engines, blob store and event publisher, built once at start."""

from dataclasses import dataclass

import redis

from queues import BlobStore, EventPublisher

from .engines import Engines
from .settings import WorkerSettings


@dataclass
class WorkerContext:
    settings: WorkerSettings
    connection: redis.Redis
    engines: Engines | None
    blobs: BlobStore
    publisher: EventPublisher

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
