"""The long-lived clients the app's routes share, opened at start and closed at shutdown."""

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from starlette.requests import HTTPConnection

from billing import AsyncLedger
from council import Budgets, CouncilResponder, EchoResponder, LLMQueue
from queues import AsyncBlobStore, AsyncEventPublisher, EventHub, JobClient, as_text, voices_key
from shared_schemas import ErrorCode

from .meter import Meter
from .open_turns import OpenTurns
from .pace import Pace
from .settings import AppSettings
from .streams import OpenStreams

if TYPE_CHECKING:
    from collections.abc import Callable

    from council import Responder

    ResponderFactory = Callable[[redis.asyncio.Redis], Responder]


class Recordings:
    """The bytes of recordings this process holds (uploaded whole, until `audio_end`), all sockets
    together, within a cap: ten sockets each near the 64 MiB of one recording took the app from
    155 MB to 1 GB. And one user's, all their sockets together, within a smaller one: four sockets
    of one user holding unfinished 64 MiB recordings had taken the whole allowance. A recording
    that would pass a cap is refused (the error to send), the others go on."""

    def __init__(self, cap: int, per_user: int | None = None) -> None:
        self.cap = cap
        self.per_user = per_user or cap
        self.held = 0
        self.users: Counter[str] = Counter()

    def take(self, size: int, user: str = "anonymous") -> tuple[str, str] | None:
        if self.users[user] + size > self.per_user:
            return ErrorCode.AUDIO_QUOTA, USER_BUSY.format(mib=self.per_user / 2**20)
        if self.held + size > self.cap:
            return ErrorCode.SERVER_BUSY, BUSY
        self.held += size
        self.users[user] += size
        return None

    def give_back(self, size: int, user: str = "anonymous") -> None:
        self.held = max(0, self.held - size)
        self.users[user] -= size
        if self.users[user] <= 0:
            del self.users[user]


BUSY = (
    "The server holds as much recorded audio as it may right now (others are uploading too), so this "
    "recording was dropped. Try again in a moment, or stream the microphone instead (listen)."
)
USER_BUSY = (
    "Your recordings under way hold {mib:.0f} MiB, as much as one user may at once "
    "(COUNCIL_MAX_RECORDING_BYTES_PER_USER), so this one was dropped. End the others first, or stream the "
    "microphone instead (listen)."
)


@dataclass
class Services:
    settings: AppSettings
    redis: redis.Redis  # blocking: only for RQ calls run in threads
    aredis: AsyncRedis  # (the field `redis` hides the module's name in this class's body)
    hub: EventHub
    jobs: JobClient
    blobs: AsyncBlobStore
    publisher: AsyncEventPublisher
    responder: "Responder"
    meter: Meter
    open_turns: OpenTurns
    recordings: Recordings
    pace: Pace
    _llm_checked: tuple[float, list[dict[str, Any]]] | None = None
    # What `close` undoes, last opened first: every step runs even when one before it fails.
    _exits: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def llm_status(self) -> list[dict[str, Any]] | None:
        """Whether the council's LLM servers answer (None when no council answers turns)."""
        check = getattr(self.responder, "check", None)
        if check is None:
            return None
        now = time.monotonic()
        if self._llm_checked is None or now - self._llm_checked[0] > self.settings.llm_status_ttl_s:
            self._llm_checked = (now, [status.as_dict() for status in await check()])
        return self._llm_checked[1]

    async def llm_down(self) -> str | None:
        """What to do, when the council has no language model that answers; None when one does
        (or no council answers turns: echo)."""
        statuses = await self.llm_status()
        if not statuses or any(status["ready"] for status in statuses):
            return None
        details = " ".join(str(status["detail"]) for status in statuses)
        return (
            f"The council has no language model to answer with: {details} Or run Council with "
            "COUNCIL_RESPONDER=echo to try the voice path without one."
        )

    async def llm_notice(self) -> str | None:
        """What a person should know about the model answering (the small built-in one), or None."""
        return next((s["notice"] for s in await self.llm_status() or [] if s.get("notice") and s["ready"]), None)

    async def voices(self) -> dict[str, str]:
        """Voices the running workers speak, as they announced them at start."""
        raw = await self.aredis.hgetall(voices_key(self.settings.queues))
        return {as_text(k): as_text(v) for k, v in sorted(raw.items())}

    @classmethod
    async def open(cls, settings: AppSettings, make_responder: "ResponderFactory | None" = None) -> "Services":
        """Open the clients. The responder: `make_responder(redis)` when given (tests, benchmarks),
        else the one the settings name. A step that fails closes what the steps before it opened
        (an exit stack, as arq and httpx keep theirs), and `close` closes it all."""
        q = settings.queues
        async with contextlib.AsyncExitStack() as exits:
            sync = q.connect()
            exits.callback(sync.close)
            aconn = _async_client(settings)
            exits.push_async_callback(aconn.aclose)
            budgets = Budgets.from_settings(settings.council, AsyncLedger(aconn, q.key_prefix))
            publisher = AsyncEventPublisher(q, aconn)
            jobs, blobs, hub = JobClient(q, sync, aconn), AsyncBlobStore(q, aconn), EventHub(q, aconn)
            if make_responder is not None:
                responder = make_responder(aconn)
            elif settings.responder == "echo":
                responder = EchoResponder()
            else:
                # Members whose model the workers serve call it through the app's queues and hub.
                llm_queue = LLMQueue(jobs, hub, settings.council.llm_start_wait_s)
                responder = CouncilResponder.from_settings(settings.council, aconn, budgets, llm_queue)
            services = cls(
                settings=settings,
                redis=sync,
                aredis=aconn,
                hub=hub,
                jobs=jobs,
                blobs=blobs,
                publisher=publisher,
                responder=responder,
                meter=Meter(
                    budgets,
                    jobs,
                    blobs,
                    settings.blob_quota_bytes,
                    user_share=settings.storage_user_share,
                    reserve=settings.storage_reserve,
                    streams=OpenStreams(q, aconn, settings.max_streams_per_user),
                ),
                open_turns=OpenTurns(
                    q, aconn, publisher, alive_ttl_s=settings.app_alive_ttl_s, beat_s=settings.app_beat_s
                ),
                recordings=Recordings(settings.max_recording_bytes, settings.max_recording_bytes_per_user),
                pace=Pace(settings.max_frames_per_user_s, burst=2 * settings.max_frames_per_user_s),
            )
            exits.push_async_callback(hub.close)  # a hub that failed to start has a pub/sub to close
            await hub.start()
            exits.push_async_callback(services.open_turns.stop)
            services.open_turns.start()
            services._exits = exits.pop_all()
        return services

    async def close(self) -> None:
        """Stop the tasks and close the clients, in the reverse order of `open`; a step that fails
        does not keep the next from running (the first failure is raised once all have run)."""
        await self._exits.aclose()


def _async_client(settings: AppSettings) -> redis.asyncio.Redis:
    """The app's asyncio client (as `queues.connect_async()`: the URL, password and TLS files), shared
    by every session. Its pool of COUNCIL_REDIS_POOL_SIZE connections waits up to
    COUNCIL_REDIS_POOL_WAIT_S for a free one rather than failing with "Too many connections" when a
    burst of sessions wants more than it holds, as redis-py's default pool does past 100."""
    q = settings.queues
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        q.redis_url,
        **q.redis_options(),
        max_connections=settings.redis_pool_size,
        timeout=settings.redis_pool_wait_s,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=1), retries=3),
    )
    return redis.asyncio.Redis.from_pool(pool)


def services(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found
