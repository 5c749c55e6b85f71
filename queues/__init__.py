"""The shared layer: Redis settings, queues, enqueue by name, events, blobs, job status.

Imports on both interpreters; depends only on shared_schemas, redis and rq.
"""

from . import functions
from .blobs import AsyncBlobStore, BlobMissing, BlobStore, BlobTooLarge
from .client import JobClient
from .events import EventPublisher, JobEvents, replay
from .hub import EventHub, Subscription
from .settings import BATCH, REALTIME, QueueSettings, SettingsError
from .status import JobStatus, job_status

__all__ = [
    "BATCH",
    "REALTIME",
    "AsyncBlobStore",
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
    "functions",
    "job_status",
    "replay",
]
