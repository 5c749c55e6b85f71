"""The shared transport: Redis settings, queues, enqueue by name, events, blobs, job status, logs.

Imports on both interpreters; depends only on shared_schemas, redis and rq. What the council
spends is another subject, in `billing`. Import from here, not from the modules (those whose name
starts with `_` are private); `functions` and `mic` are public modules of names and keys.
"""

from . import functions, mic
from ._audiofiles import find_audio
from ._blobs import AsyncBlobStore, BlobMissing, BlobStore, BlobTooLarge
from ._client import JobClient
from ._env import FALSE_WORDS, SPLIT, TRUE_WORDS, EnvSettings, Flag, Names, SettingsError
from ._events import AsyncEventPublisher, EventPublisher, JobEvents, areplay, atrimmed, replay, stream_key
from ._fair import FairShare, RateLimited
from ._hub import REDIS_DOWN, EventHub, Subscription
from ._logs import configure_logging, log_context
from ._replies import as_text
from ._rq import in_thread
from ._status import JobStatus, ajob_status, job_status, live_workers
from ._storage import AsyncStorage
from ._voices import announce_voices, voices_key
from ._wavs import join_wavs
from .mic import MicKeys, MicReader, MicWriter
from .settings import BATCH, LISTEN, LLM, REALTIME, SPEECH, QueueSettings

__all__ = [
    "BATCH",
    "FALSE_WORDS",
    "LISTEN",
    "LLM",
    "REALTIME",
    "REDIS_DOWN",
    "SPEECH",
    "SPLIT",
    "TRUE_WORDS",
    "AsyncBlobStore",
    "AsyncEventPublisher",
    "AsyncStorage",
    "BlobMissing",
    "BlobStore",
    "BlobTooLarge",
    "EnvSettings",
    "EventHub",
    "EventPublisher",
    "FairShare",
    "Flag",
    "JobClient",
    "JobEvents",
    "JobStatus",
    "MicKeys",
    "MicReader",
    "MicWriter",
    "Names",
    "QueueSettings",
    "RateLimited",
    "SettingsError",
    "Subscription",
    "ajob_status",
    "announce_voices",
    "areplay",
    "as_text",
    "atrimmed",
    "configure_logging",
    "find_audio",
    "functions",
    "in_thread",
    "job_status",
    "join_wavs",
    "live_workers",
    "log_context",
    "mic",
    "replay",
    "stream_key",
    "voices_key",
]
