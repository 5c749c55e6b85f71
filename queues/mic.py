"""A streamed microphone in Redis, between the app that receives it and the worker that listens.

One Redis stream per `listen` job (`shared_schemas.ListenJob`): the app appends the person's audio
as it arrives (field `a`: PCM16 little-endian mono at 16 kHz) and, at the end, one control entry
(field `c`): `end` when the person closed it (released push-to-talk, turned the microphone off),
`gone` when their connection dropped. A worker's listener reads it in order, trims what it has
read, and holds a lease (a key with a short TTL naming the worker) while it listens, so that the
app can tell a stream nobody took from one whose worker died.

Audio never goes through HTTP, and nothing here decodes it: both runtimes import this module.
"""

from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio

from .settings import QueueSettings

AUDIO = b"a"
CONTROL = b"c"
END = "end"  # the person closed the stream: the turn under way ends now
GONE = "gone"  # the person's connection dropped: what was under way is dropped too


@dataclass(frozen=True)
class MicKeys:
    stream: str
    lease: str

    @classmethod
    def of(cls, settings: QueueSettings, stream_id: str) -> "MicKeys":
        stream = f"{settings.key_prefix}:mic:{stream_id}"
        return cls(stream=stream, lease=f"{stream}:lease")


class MicWriter:
    """The app's end: append frames, close, and ask who listens (async, one round trip each)."""

    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis, stream_id: str) -> None:
        self.keys = MicKeys.of(settings, stream_id)
        self.ttl_s = settings.mic_ttl_s
        self._connection = connection

    async def append(self, pcm: bytes) -> None:
        async with self._connection.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys.stream, {AUDIO: pcm})
            pipe.expire(self.keys.stream, self.ttl_s)
            await pipe.execute()

    async def append_and_ask(self, pcm: bytes) -> str | None:
        """Append audio and say who listens, in one round trip (None: nobody yet, or any more)."""
        async with self._connection.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys.stream, {AUDIO: pcm})
            pipe.expire(self.keys.stream, self.ttl_s)
            pipe.get(self.keys.lease)
            done = await pipe.execute()
        return _text(done[2])

    async def close(self, how: str) -> None:
        async with self._connection.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys.stream, {CONTROL: how})
            pipe.expire(self.keys.stream, self.ttl_s)
            await pipe.execute()

    async def listener(self) -> str | None:
        return _text(await self._connection.get(self.keys.lease))


class MicReader:
    """The worker's end: read entries in order, trim what was read, hold the lease (blocking)."""

    def __init__(self, connection: redis.Redis, stream_key: str, worker: str) -> None:
        self.stream = stream_key
        self.lease = f"{stream_key}:lease"
        self.worker = worker
        self._connection = connection
        self.last_id = "0"

    def read(self, block_ms: int, count: int = 200) -> list[tuple[bytes | None, str | None]]:
        """The next entries as (audio, control) pairs, waiting up to `block_ms` for the first."""
        # Our connections speak RESP2, where XREAD answers [[stream, [(id, {field: value}), ...]]], or
        # None when nothing came (redis-py's type is the union of every protocol's reply).
        found = cast(
            "list[list[Any]] | None", self._connection.xread({self.stream: self.last_id}, count=count, block=block_ms)
        )
        entries: list[tuple[bytes | None, str | None]] = []
        for _, items in found or []:
            for entry_id, fields in items:
                self.last_id = _text(entry_id) or self.last_id
                control = fields.get(CONTROL)
                entries.append((fields.get(AUDIO), _text(control) if control is not None else None))
        return entries

    def hold(self, ttl_ms: int) -> None:
        """Take or keep the lease, and drop the entries read so far (nothing re-reads them)."""
        with self._connection.pipeline(transaction=False) as pipe:
            pipe.set(self.lease, self.worker, px=ttl_ms)
            if self.last_id != "0":
                pipe.xtrim(self.stream, minid=self.last_id)
            pipe.execute()

    def release(self) -> None:
        """The stream is over: its key and lease go."""
        self._connection.delete(self.stream, self.lease)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
