"""The long-lived clients the app's routes share, opened at start and closed at shutdown."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
import redis.asyncio
from starlette.requests import HTTPConnection

from queues import AsyncBlobStore, AsyncEventPublisher, EventHub, JobClient, voices_key

from .settings import AppSettings

if TYPE_CHECKING:
    from council import Responder


@dataclass
class Services:
    settings: AppSettings
    redis: redis.Redis  # blocking: only for RQ calls run in threads
    aredis: redis.asyncio.Redis
    hub: EventHub
    jobs: JobClient
    blobs: AsyncBlobStore
    publisher: AsyncEventPublisher
    responder: "Responder"

    async def voices(self) -> dict[str, str]:
        """Voices the running workers speak, as they announced them at start."""
        raw = await self.aredis.hgetall(voices_key(self.settings.queues))
        return {k.decode(): v.decode() for k, v in sorted(raw.items())}

    @classmethod
    async def open(cls, settings: AppSettings, responder: "Responder") -> "Services":
        q = settings.queues
        sync, aconn = q.connect(), q.connect_async()
        services = cls(
            settings=settings,
            redis=sync,
            aredis=aconn,
            hub=EventHub(q, aconn),
            jobs=JobClient(q, sync, aconn),
            blobs=AsyncBlobStore(q, aconn),
            publisher=AsyncEventPublisher(q, aconn),
            responder=responder,
        )
        await services.hub.start()
        return services

    async def close(self) -> None:
        await self.hub.close()
        await self.aredis.aclose()
        self.redis.close()


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services
