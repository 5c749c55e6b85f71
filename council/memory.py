"""Conversation memory: each session's turns (what the person said, what the council answered)
in Redis, so they outlive the app, and read back newest first within a token budget.

When TigerGraph is configured, each turn is also written there (see `tigergraph.py`); Redis stays
the store the council reads from.
"""

import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Protocol

import redis.asyncio
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from .settings import CouncilSettings
from .signals import STOPWORDS

log = logging.getLogger(__name__)

# KEYS: the history list. ARGV: turn id, the new answer. Replaces that turn's answer in place.
_AMEND = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i, item in ipairs(items) do
  local turn = cjson.decode(item)
  if turn.turn_id == ARGV[1] then
    turn.answer = ARGV[2]
    redis.call('LSET', KEYS[1], i - 1, cjson.encode(turn))
    return 1
  end
end
return 0
"""


@dataclass(frozen=True)
class Turn:
    turn_id: str
    user: str
    answer: str
    at: float

    @property
    def tokens(self) -> int:
        """Roughly: four characters a token."""
        return (len(self.user) + len(self.answer) + 3) // 4

    def messages(self) -> list[BaseMessage]:
        return [HumanMessage(self.user), AIMessage(self.answer)]


class Mirror(Protocol):
    """Somewhere else turns are written to as well."""

    async def remember(self, session_id: str, turn: Turn, topics: list[str]) -> None: ...


class Memory:
    def __init__(self, redis_client: redis.asyncio.Redis, settings: CouncilSettings, mirror: Mirror | None = None):
        self.redis = redis_client
        self.settings = settings
        self.mirror = mirror

    def _key(self, session_id: str) -> str:
        return f"{self.settings.key_prefix}:history:{session_id}"

    async def remember(self, session_id: str, turn_id: str, user: str, answer: str, topics: list[str]) -> Turn:
        turn = Turn(turn_id=turn_id, user=user, answer=answer, at=time.time())
        key = self._key(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(asdict(turn)))
            pipe.ltrim(key, -self.settings.history_turns, -1)
            pipe.expire(key, self.settings.memory_ttl_s)
            await pipe.execute()
        if self.mirror is not None:
            try:
                await self.mirror.remember(session_id, turn, topics)
            except Exception:  # the edge: the mirror holds a copy; Redis has the turn
                log.exception("could not copy turn %s of session %s to the mirror", turn_id, session_id)
        return turn

    async def amend(self, session_id: str, turn_id: str, user: str, answer: str) -> None:
        """Replace the answer remembered for `turn_id` (a stopped answer: what was heard of it), or
        remember the turn now if it was stopped before its answer was remembered."""
        key = self._key(session_id)
        replaced = await self.redis.eval(_AMEND, 1, key, turn_id, answer)
        if not replaced:
            await self.remember(session_id, turn_id, user, answer, [])

    async def history(self, session_id: str, budget_tokens: int | None = None) -> list[Turn]:
        """The latest turns, oldest first, as many as fit in `budget_tokens` (newest kept)."""
        budget = self.settings.history_tokens if budget_tokens is None else budget_tokens
        raw = await self.redis.lrange(self._key(session_id), 0, -1)
        kept: list[Turn] = []
        for item in reversed(raw):
            turn = Turn(**json.loads(item))
            if turn.tokens > budget:
                break
            budget -= turn.tokens
            kept.append(turn)
        return kept[::-1]

    async def search(self, session_id: str, query: str, limit: int = 3) -> list[Turn]:
        """The remembered turns that share the most words with `query`, best first."""
        wanted = set(re.findall(r"\w+", query.lower())) - STOPWORDS
        scored = []
        for i, item in enumerate(await self.redis.lrange(self._key(session_id), 0, -1)):
            turn = Turn(**json.loads(item))
            score = len(wanted & set(re.findall(r"\w+", f"{turn.user} {turn.answer}".lower())))
            if score:
                scored.append((-score, -i, turn))
        return [turn for _, _, turn in sorted(scored, key=lambda s: s[:2])[:limit]]

    async def forget(self, session_id: str) -> None:
        await self.redis.delete(self._key(session_id))
