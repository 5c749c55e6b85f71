"""A streamed microphone in Redis, between the app that receives it and the worker that listens.

One Redis stream per `listen` job (`shared_schemas.ListenJob`): the app appends the person's audio
as it arrives (field `a`: PCM16 little-endian mono at 16 kHz) and, at the end, one control entry
(field `c`): `end` when the person closed it (released push-to-talk, turned the microphone off),
`gone` when their connection dropped. A worker's listener reads it in order and holds a lease (a
key with a short TTL naming the worker, renewed by its worker while the listener makes progress),
so that the app can tell a stream nobody took from one whose worker died. It also keeps a
checkpoint (`Checkpoint`): the entry up to which every turn is decided, the audio time there and the
next turn's number; entries up to it are trimmed, the rest stay, so that when its worker dies
another one resumes the stream from the checkpoint, from the frames already in Redis.

Audio never goes through HTTP, and nothing here decodes it: both runtimes import this module.
"""

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis
import redis.asyncio

from ._replies import as_text
from .settings import QueueSettings

AUDIO = b"a"
CONTROL = b"c"
END = "end"  # the person closed the stream: the turn under way ends now
GONE = "gone"  # the person's connection dropped: what was under way is dropped too


@dataclass(frozen=True)
class MicKeys:
    stream: str
    lease: str
    checkpoint: str

    @classmethod
    def of(cls, settings: QueueSettings, stream_id: str) -> "MicKeys":
        stream = f"{settings.key_prefix}:mic:{stream_id}"
        return cls(stream=stream, lease=f"{stream}:lease", checkpoint=f"{stream}:checkpoint")


@dataclass(frozen=True)
class Checkpoint:
    """Where a stream's decisions are made up to: every entry up to `entry_id` (its audio ends
    `sample` samples into the stream) is decided, and the next turn is number `turn`."""

    entry_id: str
    sample: int
    turn: int


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
        holder: bytes | str | None = done[2]
        return as_text(holder)

    async def close(self, how: str) -> None:
        async with self._connection.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys.stream, {CONTROL: how})
            pipe.expire(self.keys.stream, self.ttl_s)
            await pipe.execute()

    async def abandon(self) -> None:
        """The stream failed (nobody listens): its frames go, and a listener that resumes it later
        finds only its end, never a turn of audio the person was told to say again."""
        async with self._connection.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.stream, self.keys.checkpoint)
            pipe.xadd(self.keys.stream, {CONTROL: GONE})
            pipe.expire(self.keys.stream, self.ttl_s)
            await pipe.execute()

    async def listener(self) -> str | None:
        return as_text(await self._connection.get(self.keys.lease))


class MicReader:
    """The worker's end: read entries in order, hold the lease, keep the checkpoint (blocking)."""

    def __init__(self, connection: redis.Redis, stream_key: str, worker: str, ttl_s: int = 120) -> None:
        self.stream = stream_key
        self.lease = f"{stream_key}:lease"
        self.checkpoint_key = f"{stream_key}:checkpoint"
        self.runs_key = f"{stream_key}:runs"
        self.worker = worker
        self.ttl_s = ttl_s
        self._connection = connection
        self.last_id = "0"
        self._clock_offset_ms = 0.0  # Redis's clock less ours, which entry ids are stamped with

    def read(self, block_ms: int, count: int = 200) -> list[tuple[str, bytes | None, str | None]]:
        """The next entries as (entry id, audio, control), waiting up to `block_ms` for the first."""
        # Our connections speak RESP2, where XREAD answers [[stream, [(id, {field: value}), ...]]], or
        # None when nothing came (redis-py's type is the union of every protocol's reply).
        found = cast(
            "list[list[Any]] | None", self._connection.xread({self.stream: self.last_id}, count=count, block=block_ms)
        )
        entries: list[tuple[str, bytes | None, str | None]] = []
        for _, items in found or []:
            for entry_id, fields in items:
                self.last_id = as_text(entry_id) or self.last_id
                control = fields.get(CONTROL)
                entries.append((self.last_id, fields.get(AUDIO), as_text(control)))
        return entries

    def count_run(self) -> int:
        """This listener's number among the stream's (1, then 2 for one resuming it, and so on)."""
        with self._connection.pipeline(transaction=True) as pipe:
            pipe.incr(self.runs_key)
            pipe.expire(self.runs_key, self.ttl_s)
            runs, _ = pipe.execute()
        return int(runs)

    def hold(self, ttl_ms: int) -> None:
        """Take or keep the lease."""
        self._connection.set(self.lease, self.worker, px=ttl_ms)

    def resume(self) -> Checkpoint | None:
        """Where a listener before this one got to (reading goes on after it), or None: from the start.
        Also reads Redis's clock, for `lag_ms`."""
        with self._connection.pipeline(transaction=False) as pipe:
            pipe.get(self.checkpoint_key)
            pipe.time()
            saved, (seconds, micros) = pipe.execute()
        self._clock_offset_ms = seconds * 1000 + micros / 1000 - time.time() * 1000
        if saved is None:
            return None
        checkpoint = Checkpoint(**json.loads(saved))
        self.last_id = checkpoint.entry_id
        return checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        """Every entry up to the checkpoint's is decided: say so, and drop them (nothing re-reads them)."""
        with self._connection.pipeline(transaction=False) as pipe:
            pipe.set(self.checkpoint_key, json.dumps(asdict(checkpoint)), ex=self.ttl_s)
            pipe.xtrim(self.stream, minid=checkpoint.entry_id)
            pipe.execute()

    def lag_ms(self, entry_id: str) -> float:
        """How long ago the app appended this entry (its id is Redis's clock in ms when it was added)."""
        return max(0.0, time.time() * 1000 + self._clock_offset_ms - int(entry_id.split("-")[0]))

    def let_go(self) -> None:
        """This listener stops (its worker shuts down); the stream goes on with another: the lease goes."""
        self._connection.delete(self.lease)

    def release(self) -> None:
        """The stream is over: its key, lease, checkpoint and count of runs go."""
        self._connection.delete(self.stream, self.lease, self.checkpoint_key, self.runs_key)
