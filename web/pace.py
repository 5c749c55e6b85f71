"""A bounded share of the event loop per user: the WebSocket frames one user sends, all their
sockets together, are read at most `rate` a second (with a burst of `burst`). A user past it is
not refused: their sockets are read later, so their frames wait in their own connections' buffers
(TCP pushes back on the sender) while others' are read at once. A 16-socket frame flood had pushed
other users' first audio to 2-4 s on the one event loop.

The page sends 50 frames a second while the microphone is open (20 ms each), and a few more for
its controls; the default rate leaves it four times that.
"""

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    at: float = field(default_factory=time.monotonic)


class Pace:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def delay(self, user: str) -> float:
        """Take one frame's place for `user`: how long to wait before reading it (0: at once)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.setdefault(user, _Bucket(self.burst, now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate) - 1
        bucket.at = now
        if len(self._buckets) > 10_000:  # forget users idle long enough to be full again
            full = now - self.burst / self.rate
            self._buckets = {u: b for u, b in self._buckets.items() if b.at > full or u == user}
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate

    async def wait(self, user: str) -> None:
        if (seconds := self.delay(user)) > 0:
            await asyncio.sleep(seconds)
