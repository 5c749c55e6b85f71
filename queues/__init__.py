"""The shared layer: Redis settings, queues, enqueue by name, events, blobs, job status.

Imports on both interpreters; depends only on shared_schemas, redis and rq.
"""

from . import functions, mic
from .blobs import AsyncBlobStore, BlobMissing, BlobStore, BlobTooLarge
from .charges import Charge, Limits, Refused
from .client import JobClient
from .events import AsyncEventPublisher, EventPublisher, JobEvents, areplay, atrimmed, replay
from .fair import RateLimited
from .hub import REDIS_DOWN, EventHub, Subscription
from .ledger import AsyncLedger, Ledger
from .mic import MicKeys, MicReader, MicWriter
from .settings import BATCH, LISTEN, REALTIME, SPEECH, QueueSettings, SettingsError
from .status import JobStatus, ajob_status, job_status
from .voices import announce_voices, voices_key

__all__ = [
    "BATCH",
    "LISTEN",
    "REDIS_DOWN",
    "REALTIME",
    "SPEECH",
    "AsyncBlobStore",
    "AsyncEventPublisher",
    "AsyncLedger",
    "BlobMissing",
    "BlobStore",
    "BlobTooLarge",
    "Charge",
    "EventHub",
    "EventPublisher",
    "JobClient",
    "JobEvents",
    "JobStatus",
    "Ledger",
    "Limits",
    "MicKeys",
    "MicReader",
    "MicWriter",
    "QueueSettings",
    "RateLimited",
    "Refused",
    "SettingsError",
    "Subscription",
    "ajob_status",
    "announce_voices",
    "areplay",
    "atrimmed",
    "functions",
    "mic",
    "job_status",
    "replay",
    "voices_key",
]
