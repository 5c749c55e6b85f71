"""Redis and queue settings, built once per runtime from the environment and passed down."""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

import redis
import redis.asyncio

REALTIME = "realtime"
BATCH = "batch"


class SettingsError(ValueError):
    """A setting from the environment is missing or malformed; the message names it."""


@dataclass(frozen=True)
class QueueSettings:
    """Everything the shared layer needs; each field reads `COUNCIL_<FIELD>` from the environment."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    realtime_queue: str = REALTIME
    batch_queue: str = BATCH
    # Audio blobs (users' uploads, synthesized clips) live this long, and no larger than this.
    blob_ttl_s: int = 3600
    blob_max_bytes: int = 64 * 1024 * 1024
    # Per-session event streams: capped in length, expire when a session goes quiet.
    stream_maxlen: int = 2000
    stream_ttl_s: int = 24 * 3600
    # RQ: how long results and failures are kept, and how long each job type may run.
    result_ttl_s: int = 3600
    failure_ttl_s: int = 7 * 24 * 3600
    transcribe_timeout_s: int = 600
    synthesize_timeout_s: int = 60
    retries: int = 2
    # Prefix for every key this project owns (RQ keeps its own `rq:` keys).
    key_prefix: str = "council"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"COUNCIL_{f.name.upper()}"
            raw = environ.get(name)
            if raw is None and f.name == "redis_url":
                raw = environ.get("REDIS_URL")
            if raw is None:
                continue
            if f.type in (int, "int"):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
            else:
                values[f.name] = raw
        settings = cls(**values)
        if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"COUNCIL_REDIS_URL must start with redis://, rediss:// or unix://, got {settings.redis_url!r}"
            )
        return settings

    @property
    def queue_names(self) -> tuple[str, str]:
        """In priority order: a worker serves `realtime` before `batch`."""
        return (self.realtime_queue, self.batch_queue)

    def connect(self) -> redis.Redis:
        """A blocking client (RQ needs one that returns bytes)."""
        return redis.Redis.from_url(self.redis_url, health_check_interval=30)

    def connect_async(self) -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_url(self.redis_url, health_check_interval=30)
