"""Redis outages, seen from a worker: wait with backoff, say so once, say when it is over.

A Redis at its memory cap (`maxmemory`, policy `noeviction`: it refuses writes rather than drop
queued jobs) counts as one too: the worker keeps its job and waits for room, where it used to
crash on the first refused write.
"""

import logging
import time

import redis

import queues

log = logging.getLogger(__name__)

# Redis away (queues.REDIS_DOWN, the one definition), or full: what a worker waits out.
REDIS_DOWN_OR_FULL = (*queues.REDIS_DOWN, redis.exceptions.OutOfMemoryError)


class Outage:
    """Tracks one connection's outages: `failed` logs the first failure and sleeps a growing
    backoff; `ok` logs the recovery once. Returns whether an outage just ended."""

    def __init__(self, what: str, first_wait_s: float = 0.5, max_wait_s: float = 15.0) -> None:
        self.what = what
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.since: float | None = None
        self._wait_s = first_wait_s

    def failed(self, exc: BaseException, sleep: bool = True) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.error("%s: redis unavailable (%s); retrying with backoff up to %.0f s", self.what, exc, self.max_wait_s)
        if sleep:
            time.sleep(self._wait_s)
        self._wait_s = min(self._wait_s * 2, self.max_wait_s)

    def ok(self) -> bool:
        if self.since is None:
            return False
        log.warning("%s: redis reconnected after %.1f s", self.what, time.monotonic() - self.since)
        self.since, self._wait_s = None, self.first_wait_s
        return True
