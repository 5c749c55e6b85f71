"""Where a page's playback of the conversation got to, as the page reports it (`played` frames).

Kept per session in Redis, so that a page that comes back (a reload, another tab) resumes speaking
at the sentence that was playing, decided by what was played, not by comparing clocks; and so
that a Stop without a position of its own still knows what was heard.
"""

import redis.asyncio

from queues import QueueSettings

from .protocol import Played, Position


class Playback:
    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis, session_id: str) -> None:
        self.key = f"{settings.key_prefix}:played:{session_id}"
        self.ttl_s = settings.stream_ttl_s
        self.connection = connection

    async def save(self, played: Played) -> None:
        await self.connection.set(self.key, played.model_dump_json(), ex=self.ttl_s)

    async def last(self) -> Played | None:
        raw = await self.connection.get(self.key)
        return Played.model_validate_json(raw) if raw else None

    async def position(self) -> Position | None:
        played = await self.last()
        return None if played is None else Position(**played.model_dump(exclude={"type", "done"}))
