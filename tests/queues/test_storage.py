"""Every byte a user causes to be stored is counted against them (#22, break 1): a blob the app
stores within the limits, a clip a worker stores, and what is freed (heard, cancelled, refused)
comes off at once. A real Redis, and one of the test's own at its maxmemory."""

import asyncio

import pytest
import redis
import redis.asyncio

from queues import AsyncStorage, BlobStore

pytestmark = pytest.mark.timeout(60)


def run(coro):
    return asyncio.run(coro)


async def _with(settings, body):
    conn = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        return await body(AsyncStorage(settings, conn), conn)
    finally:
        await conn.aclose()


def test_a_blob_is_stored_and_counted_only_within_the_users_share_and_everyones(own):
    async def body(storage, conn):
        key = f"{own.key_prefix}:blob:s1:a"
        assert await storage.put("ann", key, b"x" * 600, user_limit=1000, total_limit=1500) is None
        assert await conn.get(key) == b"x" * 600 and 0 < await conn.ttl(key) <= own.blob_ttl_s
        # Past her share: refused, saying what she and all hold; nothing stored, nothing counted.
        assert await storage.put("ann", f"{key}2", b"x" * 600, 1000, 1500) == (600, 600)
        assert not await conn.exists(f"{key}2")
        # Bob is within his share but not within everyone's.
        assert await storage.put("bob", f"{own.key_prefix}:blob:s2:b", b"y" * 800, 1000, 1300) == (0, 600)
        assert await storage.put("bob", f"{own.key_prefix}:blob:s2:b", b"y" * 700, 1000, 1300) is None
        assert await storage.held("ann") == (600, 1300) and await storage.held("bob") == (700, 1300)
        # Freed: off her share and everyone's at once.
        assert await storage.forget("ann", [key, f"{own.key_prefix}:blob:s1:never"]) == 600
        assert not await conn.exists(key)
        assert await storage.held("ann") == (0, 700)

    run(_with(own, body))


def test_a_workers_clips_count_against_their_user_and_heard_ones_are_freed(own, connection):
    blobs = BlobStore(own, connection)
    keys = [blobs.put("s1", b"w" * 100, ".wav", user="ann", clip=("turn-1", i, 0)) for i in range(3)]
    blobs.put("s1", b"u" * 50)  # a blob of nobody's (not counted)

    async def body(storage, conn):
        assert await storage.held("ann") == (300, 300)
        assert await storage.heard("ann", "s1", "turn-1", before=2) == 200  # sentences 0 and 1 heard
        assert [await conn.exists(k) for k in keys] == [0, 0, 1]
        assert await storage.held("ann") == (100, 100)
        assert await storage.heard("ann", "s1", "turn-1", before=None) == 100  # the rest: played to its end
        assert await storage.held("ann") == (0, 0) and await storage.heard("ann", "s1", "turn-1", None) == 0

    run(_with(own, body))


def test_at_maxmemory_a_refused_blob_is_not_counted_and_freeing_still_works(own_redis, own):
    settings = own.model_copy(update={"redis_url": own_redis.url})
    sync = redis.Redis.from_url(own_redis.url)
    sync.config_set("maxmemory-policy", "noeviction")

    async def body(storage, conn):
        kept = f"{own.key_prefix}:blob:s1:kept"
        assert await storage.put("ann", kept, b"k" * 4096, 2**30, 0) is None
        sync.config_set("maxmemory", max(1, sync.info("memory")["used_memory"] // 2))
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="maxmemory"):
            await storage.put("ann", f"{own.key_prefix}:blob:s1:new", b"n" * 4096, 2**30, 0)
        assert await storage.held("ann") == (4096, 4096)  # the refused one is not counted
        assert await storage.forget("ann", [kept]) == 4096  # and what was stored is given back, full or not
        assert await storage.held("ann") == (0, 0)
        sync.config_set("maxmemory", 0)

    try:
        run(_with(settings, body))
    finally:
        sync.config_set("maxmemory", 0)
        sync.close()
