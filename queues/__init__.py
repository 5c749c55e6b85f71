"""The shared layer: Redis settings, queues, enqueue by name, events, blobs, job status.

Imports on both interpreters; depends only on shared_schemas, redis and rq.
"""

from . import functions
from .blobs import AsyncBlobStore, BlobMissing, BlobStore, BlobTooLarge
from .client import JobClient
from .events import AsyncEventPublisher, EventPublisher, JobEvents, replay
from .hub import EventHub, Subscription
from .settings import BATCH, REALTIME, QueueSettings, SettingsError
from .status import JobStatus, ajob_status, job_status
from .voices import announce_voices, voices_key

__all__ = [
    "BATCH",
    "REALTIME",
    "AsyncBlobStore",
    "AsyncEventPublisher",
    "BlobMissing",
    "BlobStore",
    "BlobTooLarge",
    "EventHub",
    "EventPublisher",
    "JobClient",
    "JobEvents",
    "JobStatus",
    "QueueSettings",
    "SettingsError",
    "Subscription",
    "ajob_status",
    "announce_voices",
    "functions",
    "job_status",
    "replay",
    "voices_key",
]
