"""Audio blobs in Redis: keys the store makes itself, a TTL, and a size cap.

Keys are minted here (session id plus a random name), never chosen by a client, so knowing one
session's id does not let anyone guess another blob's key.
"""

import secrets

import redis
import redis.asyncio

from shared_schemas import ErrorCode, Refusal

from ._storage import Storage, clips_key
from .settings import QueueSettings


class BlobTooLarge(Refusal, ValueError):
    """Audio over the blob store's limit: nothing was stored."""

    code = ErrorCode.AUDIO_TOO_LARGE
    status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"The recording is too large: {size} bytes is over the {limit} byte limit.")


class BlobMissing(KeyError):
    """No blob under that key (it expired): a signal its readers handle, never a client's error."""


class _Blobs:
    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings

    def new_key(self, session_id: str, suffix: str = "") -> str:
        return self.key(session_id, f"{secrets.token_urlsafe(12)}{suffix}")

    def key(self, session_id: str, name: str) -> str:
        return f"{self.settings.key_prefix}:blob:{session_id}:{name}"

    def owner(self, key: str) -> str | None:
        """The session a blob key belongs to, or None if the key is not a blob key."""
        prefix = f"{self.settings.key_prefix}:blob:"
        if not key.startswith(prefix):
            return None
        session, sep, _ = key[len(prefix) :].rpartition(":")
        return session if sep else None

    def _check(self, data: bytes) -> None:
        if len(data) > self.settings.blob_max_bytes:
            raise BlobTooLarge(len(data), self.settings.blob_max_bytes)


class BlobStore(_Blobs):
    """Blocking blob store (workers, CLI)."""

    def __init__(self, settings: QueueSettings, connection: redis.Redis) -> None:
        super().__init__(settings)
        self.connection = connection

    def put(
        self,
        session_id: str,
        data: bytes,
        suffix: str = "",
        *,
        user: str | None = None,
        clip: tuple[str, int, int] | None = None,
    ) -> str:
        """Store `data`; counted against `user` when given (storage.py), and kept as a clip of a
        turn (turn id, sentence index, chunk), to be freed when heard."""
        self._check(data)
        key = self.new_key(session_id, suffix)
        with self.connection.pipeline(transaction=True) as pipe:
            pipe.set(key, data, ex=self.settings.blob_ttl_s)
            if user is not None:
                Storage(self.settings, self.connection).count(pipe, user, len(data))
            if clip is not None:
                turn_id, index, chunk = clip
                clips = clips_key(self.settings, session_id, turn_id)
                pipe.hset(clips, f"{index}:{chunk}", key)
                pipe.expire(clips, self.settings.blob_ttl_s)
            pipe.execute()
        return key

    def get(self, key: str) -> bytes:
        return _blob(key, self.connection.get(key))

    def delete(self, key: str) -> None:
        self.connection.delete(key)


class AsyncBlobStore(_Blobs):
    """Async blob store (the app)."""

    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis) -> None:
        super().__init__(settings)
        self.connection = connection

    async def put(self, session_id: str, data: bytes, suffix: str = "") -> str:
        self._check(data)
        key = self.new_key(session_id, suffix)
        await self.connection.set(key, data, ex=self.settings.blob_ttl_s)
        return key

    async def get(self, key: str) -> bytes:
        return _blob(key, await self.connection.get(key))

    async def delete(self, key: str) -> None:
        await self.connection.delete(key)


def _blob(key: str, data: bytes | str | None) -> bytes:
    if data is None:
        raise BlobMissing(key)
    if not isinstance(data, bytes):  # audio never decodes: a client with decode_responses cannot carry it
        raise TypeError("the blob store needs a Redis client without decode_responses")
    return data
