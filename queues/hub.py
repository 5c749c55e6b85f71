"""Live session events for async code: one pub/sub connection per process, many sessions on it.

A subscription first listens on the session's channel, then replays the session's stream after
the id the client last saw, then delivers live events; every event is delivered once, in stream
order, whether it came from the replay or from the channel.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import redis.asyncio
import redis.exceptions

from shared_schemas import Event

from .events import areplay, channel_key, parse_message, stream_id, stream_key
from .settings import QueueSettings

log = logging.getLogger(__name__)


class Subscription:
    """The events of one session for one reader, in order, without duplicates."""

    def __init__(self, session_id: str, after: str) -> None:
        self.session_id = session_id
        self.last_id: str = after
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._held: list[Event] | None = []  # live events that arrive while the replay runs

    def _accept(self, event: Event) -> None:
        assert event.id is not None
        if stream_id(event.id) <= stream_id(self.last_id):
            return
        self.last_id = event.id
        self._queue.put_nowait(event)

    def _live(self, event: Event) -> None:
        if self._held is not None:
            self._held.append(event)
        else:
            self._accept(event)

    def _replayed(self, events: list[Event]) -> None:
        held, self._held = self._held or [], None
        for event in sorted([*events, *held], key=lambda e: stream_id(e.id or "0")):
            self._accept(event)

    async def get(self, timeout: float | None = None) -> Event:
        """The next event; raises TimeoutError when none comes within `timeout` seconds."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()


class EventHub:
    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis) -> None:
        self.settings = settings
        self._connection = connection
        self._pubsub = connection.pubsub()
        self._subs: dict[str, set[Subscription]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # A channel of its own keeps the connection subscribed while no session is.
        await self._pubsub.subscribe(f"{self.settings.key_prefix}:hub:{uuid.uuid4().hex}")
        self._reader = asyncio.create_task(self._read(), name="event-hub-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()

    @property
    def sessions(self) -> int:
        return len(self._subs)

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str, after: str | None = None) -> AsyncIterator[Subscription]:
        """Events of `session_id`: those stored after `after` ("0" for all, None for none), then live."""
        if self._reader is None:
            raise RuntimeError("EventHub.start() was not called")
        channel = channel_key(self.settings, session_id)
        if after is None:
            # "From now on": the stream's newest id, read before listening, so that nothing
            # published from here on is lost, even across a dropped connection (see _resync).
            newest = await self._connection.xrevrange(stream_key(self.settings, session_id), count=1)
            after = newest[0][0].decode() if newest else "0"
        sub = Subscription(session_id, after)
        subs = self._subs.setdefault(channel, set())
        subs.add(sub)
        try:
            if channel not in self._confirmed:
                self._confirmed[channel] = asyncio.Event()
                await self._pubsub.subscribe(channel)
            await self._confirmed[channel].wait()
            sub._replayed(await areplay(self._connection, self.settings, session_id, after))
            yield sub
        finally:
            subs.discard(sub)
            if not subs:
                del self._subs[channel]
                self._confirmed.pop(channel, None)
                with contextlib.suppress(redis.exceptions.ConnectionError):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                async for message in self._pubsub.listen():
                    self._dispatch(message)
                    backoff = 0.1
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("event hub lost Redis (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                await self._resync()

    def _dispatch(self, message: dict) -> None:
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        kind = message["type"]
        if kind == "subscribe":
            if (confirmed := self._confirmed.get(channel)) is not None:
                confirmed.set()
        elif kind == "message":
            subs = self._subs.get(channel)
            if subs:
                try:
                    event = parse_message(message["data"])
                except ValueError:
                    log.exception("dropping a malformed event on %s", channel)
                    return
                for sub in subs:
                    sub._live(event)

    async def _resync(self) -> None:
        """After a reconnect, fetch from each session's stream what the channel missed."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                with contextlib.suppress(redis.exceptions.ConnectionError):
                    for event in await areplay(self._connection, self.settings, sub.session_id, sub.last_id):
                        sub._accept(event)
