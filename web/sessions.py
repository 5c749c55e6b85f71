"""Chat sessions and who owns them.

The server mints a session's id (unguessable) and a resume secret, hands both to the client once,
and keeps in Redis only the owner and a hash of the secret. Coming back to a session takes its id,
its secret and the same user; anything else is refused the same way, so a refusal says nothing
about whether the session exists. The record lives as long as the session's event stream.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import redis.asyncio

from queues import QueueSettings, as_text

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class NewSession:
    session_id: str
    resume: str  # the secret that resumes it: given to the client once, stored only as a hash


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).hexdigest().encode()


class Sessions:
    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis) -> None:
        self.settings = settings
        self.connection = connection

    def key(self, session_id: str) -> str:
        return f"{self.settings.key_prefix}:session:{session_id}"

    async def create(self, user: str) -> NewSession:
        new = NewSession(session_id=secrets.token_urlsafe(24), resume=secrets.token_urlsafe(32))
        key = self.key(new.session_id)
        async with self.connection.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"user": user, "resume": _hash(new.resume)})
            pipe.expire(key, self.settings.stream_ttl_s)
            await pipe.execute()
        return new

    async def resume(self, session_id: str, secret: str, user: str) -> bool:
        """Whether `user` may come back to `session_id` with `secret`; if so its life starts over."""
        if not SESSION_ID.match(session_id):
            return False
        record = await self.connection.hgetall(self.key(session_id))
        stored_user, stored_hash = record.get(b"user", b""), record.get(b"resume", b"")
        assert isinstance(stored_user, bytes) and isinstance(stored_hash, bytes)  # the client does not decode
        same_secret = hmac.compare_digest(_hash(secret), stored_hash)
        if not (same_secret and hmac.compare_digest(stored_user, user.encode())):
            return False
        await self.touch(session_id)
        return True

    async def owner(self, session_id: str) -> str | None:
        """The user who owns the session; None when there is no such session (or it expired)."""
        if not SESSION_ID.match(session_id):
            return None
        user = await self.connection.hget(self.key(session_id), "user")
        return as_text(user)

    async def touch(self, session_id: str) -> None:
        """The session is in use: keep its record as long as its event stream."""
        await self.connection.expire(self.key(session_id), self.settings.stream_ttl_s)
