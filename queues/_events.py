"""Session events: stored in a capped per-session stream and published on its channel, at once.

One Lua script appends the event to the stream, refreshes the stream's TTL and publishes the
event with its stream id, in one round trip and atomically: a subscriber that reads the stream
and then listens to the channel can order and de-duplicate everything by id.

A job's events are also de-duplicated at the source: a job that runs again (its worker died, or
Redis went away before its end was recorded) publishes the same events in the same order, and
the script stores each (job, type, seq) once, and one ending per job, so a user never gets an
event twice, nor a result after a failure.
"""

import logging
from collections.abc import Iterable, Iterator

import redis
import redis.asyncio
from redis.typing import StreamEntry

from shared_schemas import Event, payloads

from ._replies import as_text
from .settings import QueueSettings

log = logging.getLogger(__name__)

# KEYS: stream, channel, the job's sent-events hash. ARGV: maxlen, ttl, event, de-duplication field
# ("" for none).
_PUBLISH = """
if ARGV[4] ~= '' then
  local prior = redis.call('HGET', KEYS[3], ARGV[4])
  if prior then return prior end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[4], id)
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[3])
return id
"""


def channel_key(settings: QueueSettings, session_id: str) -> str:
    return f"{settings.key_prefix}:events:{session_id}"


def stream_key(settings: QueueSettings, session_id: str) -> str:
    return f"{settings.key_prefix}:stream:{session_id}"


def stream_id(value: str | bytes) -> tuple[int, int]:
    """A stream id as a sortable pair; raises ValueError for anything else."""
    text = as_text(value)
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


def parse_message(data: bytes | str) -> Event:
    """A channel message (`<stream id> <event json>`) as an Event carrying its id."""
    text = as_text(data)
    event_id, _, body = text.partition(" ")
    return Event.model_validate_json(body).model_copy(update={"id": event_id})


def parse_entries(entries: Iterable[StreamEntry] | None) -> Iterator[Event]:
    """A session stream's entries (XRANGE's reply) as Events carrying their ids. One this side
    cannot read (a type a newer worker added) is logged and skipped, as the hub drops it live: the
    rest of the session still replays."""
    for event_id, fields in entries or ():
        body = (fields or {}).get(b"e", (fields or {}).get("e", ""))
        ident = as_text(event_id)
        try:
            event = Event.model_validate_json(body)
        except ValueError as exc:
            log.warning("skipping stored event %s that this version cannot read: %s", ident, exc)
            continue
        yield event.model_copy(update={"id": ident})


def sent_key(settings: QueueSettings, session_id: str, job_id: str) -> str:
    return f"{settings.key_prefix}:sent:{session_id}:{job_id}"


def _script_call(settings: QueueSettings, event: Event, once: bool) -> tuple[tuple[str, ...], tuple[int | str, ...]]:
    keys = (
        stream_key(settings, event.session_id),
        channel_key(settings, event.session_id),
        sent_key(settings, event.session_id, event.job_id),
    )
    field = ("end" if event.terminal else f"{event.type}:{event.seq}") if once else ""
    return keys, (settings.stream_maxlen, settings.stream_ttl_s, event.model_dump_json(exclude={"id"}), field)


class EventPublisher:
    """Publishes job events (blocking client): used by workers. Each (job, type, seq) once, and one
    ending per job: the id returned for a repeat is the first one's."""

    def __init__(self, settings: QueueSettings, connection: redis.Redis) -> None:
        self.settings = settings
        self._script = connection.register_script(_PUBLISH)

    def publish(self, event: Event, pipeline: redis.client.Pipeline | None = None) -> Event:
        """Publish now, or as part of `pipeline` (a transaction the caller executes; the event then
        has no id here). In a pipeline the script goes as EVAL: an EVALSHA that met a Redis without
        the script would fail inside the transaction while the rest of it went through."""
        keys, args = _script_call(self.settings, event, once=True)
        if pipeline is not None:
            pipeline.eval(_PUBLISH, len(keys), *keys, *args)
            return event
        return event.model_copy(update={"id": self._script(keys=keys, args=args).decode()})


class AsyncEventPublisher:
    """Publishes events from async code: the app's own events (turns, answers) for a session."""

    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis) -> None:
        self.settings = settings
        self._script = connection.register_script(_PUBLISH)

    async def publish(self, event: Event, once: bool = False) -> Event:
        """`once`: as workers publish, each (job, type, seq) once and one ending per job."""
        keys, args = _script_call(self.settings, event, once=once)
        return event.model_copy(update={"id": (await self._script(keys=keys, args=args)).decode()})


class JobEvents:
    """The events of one job, numbered in order: what a job function uses to report.

    With `hold_ending`, the job's ending (its result or its failure) is not published at once but
    kept until `publish_ending`, which the worker calls inside the transaction that records the
    job's end: whoever gets the ending and asks RQ sees the job finished (or failed), and a worker
    that dies between the two leaves neither behind.
    """

    def __init__(
        self, publisher: EventPublisher, session_id: str, job_id: str, hold_ending: bool = False, first_seq: int = 0
    ) -> None:
        self._publisher = publisher
        self.session_id = session_id
        self.job_id = job_id
        self.hold_ending = hold_ending
        self.ending: Event | None = None
        # A job run again after its worker died and going on where it was (a resumed listener)
        # numbers its events past the first run's, which would otherwise be dropped as repeats.
        self._seq = first_seq

    def emit(self, payload: payloads.Payload) -> Event:
        event = Event.of(payload, session_id=self.session_id, job_id=self.job_id, seq=self._seq)
        self._seq += 1
        if self.hold_ending and event.terminal:
            self.ending = event
            return event
        return self._publisher.publish(event)

    def publish_ending(self, pipeline: redis.client.Pipeline) -> None:
        """Add the held ending, if any, to `pipeline`, the transaction that records the job's end."""
        if self.ending is not None:
            self._publisher.publish(self.ending, pipeline)
            self.ending = None


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


async def atrimmed(connection: redis.asyncio.Redis, settings: QueueSettings, session_id: str, after: str) -> str | None:
    """Whether a replay after `after` misses events the stream's cap trimmed: the id of the oldest
    event still kept when it does (history before it is gone), else None."""
    try:
        info = await connection.xinfo_stream(stream_key(settings, session_id))
    except redis.exceptions.ResponseError:  # no stream (yet): nothing was trimmed
        return None
    if int(info.get("entries-added", 0)) <= int(info.get("length", 0)):
        return None
    first = info.get("recorded-first-entry-id") or (info.get("first-entry") or (None,))[0]
    if first is None:
        return None
    first = as_text(first) if isinstance(first, bytes | str) else str(first)
    return first if after == "0" or stream_id(after) < stream_id(first) else None
