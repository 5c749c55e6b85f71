"""The microphones each user holds open (`listen` streams), within a per-user cap.

Why: listeners are few (`WORKER_LISTENERS` per worker), and a `listen` job is taken by the first
free one. Ten sockets of one user, each sending a frame every 2 s, held every listener; another
user was told "no voice worker took your microphone" for as long as they stayed. With a cap per
user below what the workers hold, the others always find a free listener.

A sorted set per user: stream ids scored by when they lapse. The app opens a stream's place before
its `listen` job is enqueued (the meter), keeps it while frames come (`web/mic.py`, once a second),
and gives it back when the stream closes; a place whose socket vanished lapses after `IDLE_S`.
"""

import time

import redis.asyncio

from queues import QueueSettings
from shared_schemas import ErrorCode, Refusal

# A stream that sent nothing for this long holds no place (a listener ends it after 10 s too).
IDLE_S = 10

# KEYS[1]: the user's streams. ARGV: stream id, now, lapse at, cap. Opens a place, or says how many
# are held (refused).
_OPEN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[4]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return held end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[3] - ARGV[2]) + 1)
return -1
"""


class TooManyStreams(Refusal):
    """A user has as many microphones open as they may."""

    code = ErrorCode.RATE_LIMITED
    status = 429


class OpenStreams:
    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis, cap: int) -> None:
        self.prefix = f"{settings.key_prefix}:streams:"
        self.connection = connection
        self.cap = cap
        self._open = connection.register_script(_OPEN)

    async def open(self, user: str, stream_id: str) -> None:
        """Take a place for `stream_id`, or `TooManyStreams` (nothing taken)."""
        if self.cap <= 0:
            return
        now = time.time()
        held = int(await self._open(keys=[self.prefix + user], args=[stream_id, now, now + IDLE_S, self.cap]))
        if held >= 0:
            raise TooManyStreams(
                f"You have {held} microphones open; at most {self.cap} may be open at once, so this one was "
                "not. Close one (or the other tabs listening) and try again."
            )

    async def keep(self, user: str, stream_id: str) -> None:
        """Frames still come: the place is kept another IDLE_S."""
        if self.cap > 0:
            await self.connection.zadd(self.prefix + user, {stream_id: time.time() + IDLE_S}, xx=True)

    async def close(self, user: str, stream_id: str) -> None:
        if self.cap > 0:
            await self.connection.zrem(self.prefix + user, stream_id)
