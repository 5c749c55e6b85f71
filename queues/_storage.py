"""What each user holds in the blob store: every byte a user causes to be stored (an upload, a
recording, a /v1 file, and the clips the workers speak for them) is counted against that user, and
in one total for everyone.

A counter per user (and one total) per blob lifetime: what was stored in this lifetime and the last
bounds what is held, since a blob lives one lifetime. A blob freed early (a clip heard, a batch
cancelled, an upload refused) comes off the counter of the lifetime it was stored in (read from its
remaining TTL), so what is freed is free at once. The app checks the counters before it stores or
queues (web/meter.py); a worker counts the clips it stores, since by then they are made.
"""

import time

import redis
import redis.asyncio

from ._replies import as_text
from .settings import QueueSettings

TOTAL = "*"  # the counters' name for everyone together (a user name never holds "*")

# KEYS: the blob, the user's counters (this lifetime, the last), the total's (this, the last).
# ARGV: the blob's bytes, the user's limit, the total's limit (0: none), the blob's life. Stores the
# blob and counts it, unless it would pass a limit: then returns what the user and all hold. One
# script, so a blob Redis refuses (at maxmemory: the SET is its first write) is not counted either.
_PUT = """
local user = tonumber(redis.call('GET', KEYS[2]) or '0') + tonumber(redis.call('GET', KEYS[3]) or '0')
local total = tonumber(redis.call('GET', KEYS[4]) or '0') + tonumber(redis.call('GET', KEYS[5]) or '0')
local size, ulimit, tlimit, life = string.len(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if user + size > ulimit or (tlimit > 0 and total + size > tlimit) then return {user, total} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', life)
for _, key in ipairs({KEYS[2], KEYS[4]}) do
  redis.call('INCRBY', key, size)
  redis.call('EXPIRE', key, 2 * life)
end
return {-1, -1}
"""

# KEYS: blobs. ARGV: prefix, user, blob lifetime, now (s). Deletes each blob that still exists and
# takes its size off the user's and the total's counter of the lifetime it was stored in. It may
# run at maxmemory (it only frees): a batch refused there gives back what it had stored.
_FORGET = """#!lua flags=allow-oom
local prefix, user, life, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local freed = 0
for _, key in ipairs(KEYS) do
  local size, ttl = redis.call('STRLEN', key), redis.call('TTL', key)
  if size > 0 and ttl > 0 then
    local bucket = math.floor((now - math.max(life - ttl, 0)) / life)
    for _, who in ipairs({user, '*'}) do
      local counter = prefix .. ':stored:' .. who .. ':' .. bucket
      if redis.call('EXISTS', counter) == 1 then
        if redis.call('DECRBY', counter, size) <= 0 then redis.call('DEL', counter) end
      end
    end
    freed = freed + size
  end
  redis.call('DEL', key)
end
return freed
"""


def counter_keys(settings: QueueSettings, who: str, now: float | None = None) -> list[str]:
    """`who`'s counters: this blob lifetime's, then the last's."""
    bucket = int(time.time() if now is None else now) // settings.blob_ttl_s
    return [f"{settings.key_prefix}:stored:{who}:{b}" for b in (bucket, bucket - 1)]


def clips_key(settings: QueueSettings, session_id: str, turn_id: str) -> str:
    """A turn's clips (hash: "index:chunk" -> blob key), for freeing them once heard."""
    return f"{settings.key_prefix}:clips:{session_id}:{turn_id}"


class Storage:
    """The counters, blocking (a worker counting the clips it stored)."""

    def __init__(self, settings: QueueSettings, connection: redis.Redis) -> None:
        self.settings = settings
        self.connection = connection

    def count(self, pipe: "redis.client.Pipeline", user: str, size: int) -> None:
        """Count `size` bytes just stored for `user` (within `pipe`, beside the SET)."""
        for who in (user, TOTAL):
            key = counter_keys(self.settings, who)[0]
            pipe.incrby(key, size)
            pipe.expire(key, 2 * self.settings.blob_ttl_s)


class AsyncStorage:
    """The counters, async (the app: checked before anything is stored, freed when done)."""

    def __init__(self, settings: QueueSettings, connection: redis.asyncio.Redis) -> None:
        self.settings = settings
        self.connection = connection
        self._put = connection.register_script(_PUT)
        self._forget = connection.register_script(_FORGET)

    async def put(self, user: str, key: str, data: bytes, user_limit: int, total_limit: int) -> tuple[int, int] | None:
        """Store blob `key` and count it for `user`, if both limits allow; else (what the user
        holds, what all hold), nothing stored."""
        keys = [key, *counter_keys(self.settings, user), *counter_keys(self.settings, TOTAL)]
        args: list[bytes | int] = [data, user_limit, total_limit, self.settings.blob_ttl_s]
        user_held, total_held = await self._put(keys=keys, args=args)
        return None if int(user_held) < 0 else (int(user_held), int(total_held))

    async def held(self, user: str) -> tuple[int, int]:
        """What `user` and everyone hold (as counted)."""
        values = await self.connection.mget(counter_keys(self.settings, user) + counter_keys(self.settings, TOTAL))
        n = [int(v or 0) for v in values]
        return n[0] + n[1], n[2] + n[3]

    async def forget(self, user: str, keys: list[str]) -> int:
        """Delete `user`'s blobs `keys` and take them off the counters; the bytes freed."""
        if not keys:
            return 0
        args: list[str | int] = [self.settings.key_prefix, user, self.settings.blob_ttl_s, int(time.time())]
        return int(await self._forget(keys=keys, args=args))

    async def heard(self, user: str, session_id: str, turn_id: str, before: int | None) -> int:
        """Free a turn's clips that were heard: those of sentences before `before` (None: all of
        them, the answer was played to its end or stopped); the bytes freed."""
        key = clips_key(self.settings, session_id, turn_id)
        clips = {as_text(k): as_text(v) for k, v in (await self.connection.hgetall(key)).items()}
        done = [field for field in clips if before is None or int(field.split(":")[0]) < before]
        if not done:
            return 0
        freed = await self.forget(user, [clips[field] for field in done])
        await self.connection.hdel(key, *done)
        return freed
