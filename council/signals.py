"""Signals: the topics and names that keep coming back in a conversation, and fade when they stop.

Each session has a Redis sorted set of terms. On every turn all scores decay (by a factor per
turn, and by half every `half_life_s` since the last turn), the turn's terms are added, and terms
that fell below a floor are dropped, all in one Lua call. Names (capitalized words inside a
sentence) count double. The router and the members see the strongest few.
"""

import re
import time
from collections import Counter
from dataclasses import dataclass

import redis.asyncio

from queues import as_text

from .settings import CouncilSettings

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each either else even ever every
    few for from further get gets getting give go going gonna got had has have having he her here hers
    herself him himself his how i if in into is it its itself just know let like make many may me might
    more most much must my myself need no nor not now of off on once one only or other our ours ourselves
    out over own please really right same say she should so some still such sure take tell than thank
    thanks that the their theirs them themselves then there these they thing things think this those
    through to too under until up us very want was way we well were what when where which while who whom
    why will with would yeah yes yet you your yours yourself yourselves hello okay maybe something
    anything nothing everything someone anyone don't can't won't isn't aren't doesn't didn't i'm i've
    i'd i'll you're we're they're that's there's what's""".split()
)
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")

# KEYS: the terms' sorted set, the time of the last update. ARGV: now, per-turn factor, half-life,
# floor, ttl, then term, weight pairs.
_OBSERVE = """
local now = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[2]) or now)
local factor = tonumber(ARGV[2]) * 0.5 ^ (math.max(now - last, 0) / tonumber(ARGV[3]))
redis.call('ZUNIONSTORE', KEYS[1], 1, KEYS[1], 'WEIGHTS', factor)
for i = 6, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[1], ARGV[i + 1], ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return redis.call('ZCARD', KEYS[1])
"""


def terms(text: str) -> Counter[str]:
    """Content words (lower case, stopwords and short words left out), names counting double."""
    counts: Counter[str] = Counter()
    for match in WORD.finditer(text):
        key = match.group().lower().removesuffix("'s").strip("'-")
        if len(key) < 3 or key in STOPWORDS:
            continue
        counts[key] += 2 if match.group()[0].isupper() and not _starts_sentence(text, match.start()) else 1
    return counts


def _starts_sentence(text: str, at: int) -> bool:
    i = at - 1
    while i >= 0 and text[i].isspace():
        i -= 1
    return i < 0 or text[i] in '.!?:"“'


@dataclass(frozen=True)
class Signal:
    term: str
    score: float


class Signals:
    def __init__(self, redis_client: redis.asyncio.Redis, settings: CouncilSettings) -> None:
        self.redis = redis_client
        self.settings = settings
        self._observe = redis_client.register_script(_OBSERVE)

    def _keys(self, session_id: str) -> tuple[str, str]:
        key = f"{self.settings.key_prefix}:signals:{session_id}"
        return key, f"{key}:at"

    async def observe(self, session_id: str, text: str, now: float | None = None) -> None:
        """Decay the session's signals, then add the terms of `text`."""
        s = self.settings
        args: list[str | float] = [now or time.time(), s.signals_turn_decay, s.signals_half_life_s]
        args += [s.signals_floor, s.memory_ttl_s]
        for term, weight in terms(text).items():
            args += [term, weight]
        await self._observe(keys=list(self._keys(session_id)), args=args)

    async def top(self, session_id: str, n: int | None = None, now: float | None = None) -> list[Signal]:
        """The strongest signals, decayed by the time since the last turn, strongest first."""
        key, at_key = self._keys(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrevrange(key, 0, (n or self.settings.signals_top) - 1, withscores=True)
            pipe.get(at_key)
            ranked, last = await pipe.execute()
        elapsed = max((now or time.time()) - float(last), 0.0) if last else 0.0
        fade = 0.5 ** (elapsed / self.settings.signals_half_life_s)
        found = [Signal(as_text(term), round(score * fade, 3)) for term, score in ranked]
        return [s for s in found if s.score >= self.settings.signals_floor]
