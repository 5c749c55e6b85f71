"""Live session events for async code: one pub/sub connection per process, many sessions on it.

A subscription first listens on the session's channel, then replays the session's stream after
the id the client last saw, then delivers live events; every event is delivered once, in stream
order, whether it came from the replay or from the channel.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio
import redis.exceptions

from shared_schemas import Event

from ._events import areplay, channel_key, parse_message, stream_id, stream_key
from ._replies import as_text
from .settings import QueueSettings

log = logging.getLogger(__name__)
# What a lost or restarting Redis raises (BusyLoadingError, while it reads its AOF, is a
# ConnectionError): the one definition, which the app and the workers use too.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
CONFIRM_TIMEOUT_S = 10.0


class Subscription:
    """The events of one session for one reader, in order, without duplicates."""

    def __init__(self, session_id: str, after: str) -> None:
        self.session_id = session_id
        self.last_id: str = after
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._held: list[Event] | None = []  # live events that arrive while the replay runs
        # The newest event the first replay brought: those after it were published while this
        # subscription was open (live), those up to it before (history).
        self.replayed_until: str = after
        self._started = False

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

    def _hold(self) -> None:
        """Hold live events until the next `_replayed`: the hub is reconnecting."""
        if self._held is None:
            self._held = []

    def live(self, event: Event) -> bool:
        """Whether `event` was published while this subscription was open (not replayed history)."""
        return event.id is not None and stream_id(event.id) > stream_id(self.replayed_until)

    def _replayed(self, events: list[Event]) -> None:
        if not self._started and events:
            self.replayed_until = max((e.id or "0" for e in events), key=stream_id)
        self._started = True
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
    """One pub/sub connection for every session of this process.

    When Redis goes away the hub holds every subscription, retries with backoff (logging once when
    it loses Redis and once when it is back), subscribes again, then replays each session's stream
    from the last event it delivered: a subscription sees an outage as a pause, never as a gap.
    While it is reconnecting, new subscriptions are refused with a ConnectionError at once.
    """

    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis) -> None:
        self.settings = settings
        self._connection = connection
        self._pubsub = connection.pubsub()
        self._own_channel = f"{settings.key_prefix}:hub:{uuid.uuid4().hex}"
        self._subs: dict[str, set[Subscription]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        # time.monotonic() when the current outage began; None while connected.
        self.outage_since: float | None = None

    async def start(self) -> None:
        """Subscribe and start reading; with Redis away, start anyway and keep trying."""
        error: Exception | None = None
        try:
            # A channel of its own keeps the connection subscribed while no session is.
            await self._pubsub.subscribe(self._own_channel)
            self._connected.set()
        except REDIS_DOWN as exc:
            error = exc
        self._reader = asyncio.create_task(self._read(error), name="event-hub-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()

    @property
    def sessions(self) -> int:
        return len(self._subs)

    @property
    def connected(self) -> bool:
        """Whether the hub is subscribed and delivering (False while it reconnects)."""
        return self._connected.is_set()

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str, after: str | None = None) -> AsyncIterator[Subscription]:
        """Events of `session_id`: those stored after `after` ("0" for all, None for none), then live."""
        if self._reader is None:
            raise RuntimeError("EventHub.start() was not called")
        channel = channel_key(self.settings, session_id)
        if after is None:
            # "From now on": the stream's newest id, read before listening, so that nothing
            # published from here on is lost, even across a dropped connection (see _recover).
            newest = await self._connection.xrevrange(stream_key(self.settings, session_id), count=1)
            newest_id = newest[0][0] if newest else None
            after = as_text(newest_id) if newest_id is not None else "0"
        if not self._connected.is_set():
            raise redis.exceptions.ConnectionError("Redis is unavailable: the event hub is reconnecting")
        sub = Subscription(session_id, after)
        subs = self._subs.setdefault(channel, set())
        subs.add(sub)
        try:
            if channel not in self._confirmed:
                self._confirmed[channel] = asyncio.Event()
                await self._pubsub.subscribe(channel)
            try:
                await asyncio.wait_for(self._confirmed[channel].wait(), CONFIRM_TIMEOUT_S)
            except TimeoutError:
                raise redis.exceptions.TimeoutError(f"Redis did not confirm the subscription to {channel}") from None
            sub._replayed(await areplay(self._connection, self.settings, session_id, after))
            yield sub
        finally:
            subs.discard(sub)
            if not subs and self._subs.get(channel) is subs:
                del self._subs[channel]
                self._confirmed.pop(channel, None)
                if self._connected.is_set():  # else the reconnect leaves it out
                    with contextlib.suppress(*REDIS_DOWN):
                        await self._pubsub.unsubscribe(channel)

    async def _read(self, error: Exception | None) -> None:
        if error is not None:
            await self._recover(error)
        while True:
            try:
                async for message in self._pubsub.listen():
                    self._dispatch(message)
            except REDIS_DOWN as exc:
                await self._recover(exc)

    async def _recover(self, error: Exception) -> None:
        """Reconnect with backoff; then subscribe again and replay what each session missed."""
        self._connected.clear()
        self.outage_since = time.monotonic()
        for subs in self._subs.values():
            for sub in subs:
                sub._hold()
        backoff = BACKOFF_FIRST_S
        log.warning("event hub lost Redis: redis unavailable (%s), retrying in %.1f s", error, backoff)
        while True:
            await asyncio.sleep(backoff)
            try:
                await self._resubscribe()
                await self._resync()
                break
            except REDIS_DOWN as exc:
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                log.debug("redis still unavailable (%s); retrying in %.1f s", exc, backoff)
        log.warning(
            "redis reconnected: the event hub is back after %.1f s, %d sessions resynced",
            time.monotonic() - self.outage_since,
            len(self._subs),
        )
        self.outage_since = None
        self._connected.set()

    async def _resubscribe(self) -> None:
        """A fresh pub/sub connection on every channel in use, each one confirmed."""
        old, self._pubsub = self._pubsub, self._connection.pubsub()
        with contextlib.suppress(*REDIS_DOWN):
            await old.aclose()
        channels = [self._own_channel, *self._subs]
        await self._pubsub.subscribe(*channels)
        waiting = set(channels)
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while waiting:
            message = await self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is None:
                if time.monotonic() >= deadline:
                    raise redis.exceptions.TimeoutError("Redis did not confirm the event hub's subscriptions")
                continue
            if message["type"] == "subscribe":
                waiting.discard(as_text(message["channel"]))
            self._dispatch(message)

    async def _resync(self) -> None:
        """Deliver, from each session's stream, what its subscriptions missed, merged with what the
        channel brought meanwhile."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub._replayed(await areplay(self._connection, self.settings, sub.session_id, sub.last_id))

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = as_text(message["channel"])
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
