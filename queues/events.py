"""Session events: stored in a capped per-session stream and published on its channel, at once.

One Lua script appends the event to the stream, refreshes the stream's TTL and publishes the
event with its stream id, in one round trip and atomically: a subscriber that reads the stream
and then listens to the channel can order and de-duplicate everything by id.
"""

from collections.abc import Iterable, Iterator
from typing import Any

import redis
import redis.asyncio

from shared_schemas import Event, EventType

from .settings import QueueSettings

_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[3])
return id
"""


def channel_key(settings: QueueSettings, session_id: str) -> str:
    return f"{settings.key_prefix}:events:{session_id}"


def stream_key(settings: QueueSettings, session_id: str) -> str:
    return f"{settings.key_prefix}:stream:{session_id}"


def stream_id(value: str | bytes) -> tuple[int, int]:
    """A stream id as a sortable pair; raises ValueError for anything else."""
    text = value.decode() if isinstance(value, bytes) else value
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


def parse_message(data: bytes | str) -> Event:
    """A channel message (`<stream id> <event json>`) as an Event carrying its id."""
    text = data.decode() if isinstance(data, bytes) else data
    event_id, _, body = text.partition(" ")
    return Event.model_validate_json(body).model_copy(update={"id": event_id})


def parse_entries(entries: Iterable[tuple[Any, dict[Any, Any]]]) -> Iterator[Event]:
    for event_id, fields in entries:
        body = fields.get(b"e", fields.get("e"))
        ident = event_id.decode() if isinstance(event_id, bytes) else event_id
        yield Event.model_validate_json(body).model_copy(update={"id": ident})


def _script_call(settings: QueueSettings, event: Event) -> tuple[tuple[str, str], tuple[int, int, str]]:
    keys = (stream_key(settings, event.session_id), channel_key(settings, event.session_id))
    return keys, (settings.stream_maxlen, settings.stream_ttl_s, event.model_dump_json(exclude={"id"}))


class EventPublisher:
    """Publishes events (blocking client): used by workers."""

    def __init__(self, settings: QueueSettings, connection: redis.Redis) -> None:
        self.settings = settings
        self._script = connection.register_script(_PUBLISH)

    def publish(self, event: Event) -> Event:
        keys, args = _script_call(self.settings, event)
        return event.model_copy(update={"id": self._script(keys=keys, args=args).decode()})


class AsyncEventPublisher:
    """Publishes events from async code: the app's own events (turns, answers) for a session."""

    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis) -> None:
        self.settings = settings
        self._script = connection.register_script(_PUBLISH)

    async def publish(self, event: Event) -> Event:
        keys, args = _script_call(self.settings, event)
        return event.model_copy(update={"id": (await self._script(keys=keys, args=args)).decode()})


class JobEvents:
    """The events of one job, numbered in order: what a job function uses to report."""

    def __init__(self, publisher: EventPublisher, session_id: str, job_id: str) -> None:
        self._publisher = publisher
        self.session_id = session_id
        self.job_id = job_id
        self._seq = 0

    def emit(self, type_: EventType, payload: dict[str, Any]) -> Event:
        event = Event(type=type_, session_id=self.session_id, job_id=self.job_id, seq=self._seq, payload=payload)
        self._seq += 1
        return self._publisher.publish(event)


def replay(connection: redis.Redis, settings: QueueSettings, session_id: str, after: str = "0") -> list[Event]:
    """Every stored event of a session after the id `after` ("0": all), in order."""
    return list(parse_entries(connection.xrange(stream_key(settings, session_id), min=_after(after))))


async def areplay(
    connection: redis.asyncio.Redis, settings: QueueSettings, session_id: str, after: str = "0"
) -> list[Event]:
    return list(parse_entries(await connection.xrange(stream_key(settings, session_id), min=_after(after))))


def _after(event_id: str) -> str:
    """XRANGE's lower bound for "after this id" ("0": from the start)."""
    return "-" if event_id == "0" else f"({event_id}"
