"""Turns under way, recorded in Redis, so that a turn whose app process died still ends.

A turn runs inside one app process (it holds the conversation with the LLM). Each process keeps
a short-lived `alive` key fresh and records the turns it runs while it runs them. A sweeper in
every process ends the turns of processes whose key is gone: it publishes the turn's
`turn_done` (failed, `interrupted`), so a client that comes back after an app restart sees its
turn end with a message instead of waiting for it forever. Whoever removes the record publishes,
so a turn is ended once however many processes sweep.
"""

import asyncio
import contextlib
import json
import logging
import uuid

import redis.asyncio

from queues import AsyncEventPublisher, QueueSettings, as_text
from shared_schemas import ErrorCode, Event, payloads

log = logging.getLogger(__name__)

INTERRUPTED = payloads.Failed(
    code=ErrorCode.INTERRUPTED,
    message="The server restarted while it was answering, so this answer stopped. Ask again.",
    retryable=True,
)


class OpenTurns:
    def __init__(
        self,
        settings: QueueSettings,
        aredis: redis.asyncio.Redis,
        publisher: AsyncEventPublisher,
        *,
        alive_ttl_s: float,
        beat_s: float,
    ) -> None:
        """`alive_ttl_s`, `beat_s`: this process's alive key, and how often it is renewed (the app's
        COUNCIL_APP_ALIVE_TTL_S, COUNCIL_APP_BEAT_S)."""
        self.app = uuid.uuid4().hex[:12]
        self.alive_ttl_s = alive_ttl_s
        self.beat_s = beat_s
        self.key = f"{settings.key_prefix}:turns:open"
        self._alive_prefix = f"{settings.key_prefix}:app:"
        self.aredis = aredis
        self.publisher = publisher
        self._task: asyncio.Task[None] | None = None

    async def opened(self, turn_id: str, session_id: str) -> None:
        await self.aredis.hset(self.key, turn_id, json.dumps({"session": session_id, "app": self.app}))

    async def closed(self, turn_id: str) -> None:
        await self.aredis.hdel(self.key, turn_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="open-turns")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(redis.exceptions.RedisError):
            await self.aredis.delete(self._alive_prefix + self.app)

    async def _beat(self) -> None:
        while True:
            try:
                await self.aredis.set(self._alive_prefix + self.app, "1", px=int(self.alive_ttl_s * 1000))
                await self.sweep()
            except redis.exceptions.RedisError as exc:
                log.debug("open turns: %s", exc)  # the hub reports Redis outages
            await asyncio.sleep(self.beat_s)

    async def sweep(self) -> int:
        """End the turns of app processes that are gone; how many were ended."""
        turns = {as_text(k): json.loads(v) for k, v in (await self.aredis.hgetall(self.key)).items()}
        apps = sorted({entry["app"] for entry in turns.values()} - {self.app})
        found = await asyncio.gather(*(self.aredis.exists(self._alive_prefix + app) for app in apps))
        alive = dict(zip(apps, found, strict=True))
        ended = 0
        for turn_id, entry in turns.items():
            if entry["app"] == self.app or alive.get(entry["app"]):
                continue
            if not await self.aredis.hdel(self.key, turn_id):
                continue  # another process ended it
            ended_turn = payloads.TurnDone(status="failed", error=INTERRUPTED)
            event = Event.of(ended_turn, session_id=entry["session"], job_id=turn_id, seq=0)
            await self.publisher.publish(event)
            log.warning("turn %s ended: its app process is gone", turn_id)
            ended += 1
        return ended
