"""`CouncilResponder`: the council behind the seam a turn calls (`Responder.answer`).

One turn: read the session's recurring topics and history from Redis, note this turn's topics,
run the deliberation graph while streaming its steps and replies, then remember the final answer.
What the turn's model calls and tools use is recorded against the user, the member and the turn,
within their budgets (`budgets`): the graph refuses a turn they cannot cover before any call.
"""

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Self

import redis.asyncio
from langchain_core.language_models import BaseChatModel

from billing import AsyncLedger

from . import members, prices, providers
from .budgets import Budgets, Payer
from .errors import ConfigError, CouncilFailed
from .graph import Deliberation, TurnState
from .members import Council
from .memory import Memory, Mirror
from .replies import Reply, Step
from .settings import CouncilSettings
from .signals import Signals, terms
from .tools import Toolbox
from .worker_model import LLMQueue

log = logging.getLogger(__name__)


class CouncilResponder:
    def __init__(
        self,
        settings: CouncilSettings,
        council: Council,
        models: Mapping[str, BaseChatModel],
        redis_client: redis.asyncio.Redis,
        mirror: Mirror | None = None,
        budgets: Budgets | None = None,
        servers: bool = False,
        llm_queue: LLMQueue | None = None,
    ) -> None:
        """`servers`: the models were built from the members file's providers (`from_settings`), so
        `check` asks their servers; models given otherwise (a scripted model) have none to ask.
        `llm_queue`: the queue the `worker` members' models use (`check` counts its workers)."""
        missing = [m.name for m in council.everyone if m.name not in models]
        if missing:
            raise ConfigError(f"no chat model for {', '.join(missing)}")
        self.settings = settings
        self.council = council
        self.servers = servers
        self.llm_queue = llm_queue
        self.memory = Memory(redis_client, settings, mirror)
        self.signals = Signals(redis_client, settings)
        ledger = AsyncLedger(redis_client, settings.key_prefix)
        self.budgets = budgets or Budgets(ledger, settings, council, prices.load(settings.prices_file))
        self.toolbox = Toolbox(settings, self.budgets, self.memory)
        self.deliberation = Deliberation(council, dict(models), settings, self.budgets, self.toolbox)

    @classmethod
    def from_settings(
        cls,
        settings: CouncilSettings,
        redis_client: redis.asyncio.Redis,
        budgets: Budgets | None = None,
        llm_queue: LLMQueue | None = None,
    ) -> Self:
        """The council of the members file, with each member's configured model. Nothing is
        contacted: an LLM server that is down fails turns (`LLMUnavailable`), not the start.
        `budgets`: the app's (its meter's), so that one instance meters everything. `llm_queue`:
        the app's queue client and event hub, for members whose model the workers serve."""
        council = members.load(settings.members_file)
        mirror: Mirror | None = None
        if settings.tigergraph:
            from .tigergraph import TigerGraphMirror

            mirror = TigerGraphMirror(settings)
        models = providers.build_all(council, settings, llm_queue)
        return cls(settings, council, models, redis_client, mirror, budgets, servers=True, llm_queue=llm_queue)

    async def check(self) -> list[providers.ProviderStatus]:
        """Whether each configured LLM server answers, and has the members' models."""
        return await providers.check(self.council, self.settings, self.llm_queue) if self.servers else []

    async def answer(
        self,
        session_id: str,
        turn_id: str,
        text: str,
        voice: str,
        *,
        hear_members: bool | None = None,
        critique: bool | None = None,
        hear_first: bool | None = None,
        user: str = "anonymous",
    ) -> AsyncIterator[Reply | Step]:
        """Steps and reply pieces as the council works; the chair's (or the fast member's) pieces
        are spoken, the members' only with `hear_members`, or the first to write with `hear_first`.
        Raises a `CouncilError` when the turn cannot be answered (`BudgetExceeded` when `user` may
        not spend what it needs)."""
        payer = Payer(user, session_id, turn_id)
        topics = [signal.term for signal in await self.signals.top(session_id)]
        history = await self.memory.history(session_id)
        await self.signals.observe(session_id, text)
        question = TurnState(
            question=text,
            history=history,
            topics=topics,
            voice=voice,
            hear_members=self.settings.hear_members if hear_members is None else hear_members,
            critique=self.settings.critique if critique is None else critique,
            hear_first=self.settings.hear_first if hear_first is None else hear_first,
            payer=payer,
        )
        final = ""
        try:
            async for mode, chunk in self.deliberation.graph.astream(question, stream_mode=["custom", "values"]):
                if isinstance(chunk, Reply | Step):
                    yield chunk
                elif mode == "values" and isinstance(chunk, dict):
                    final = chunk.get("final", final)
        finally:
            self.deliberation.forget(turn_id)
        if not final:
            raise CouncilFailed("The council finished without an answer. Try again.")
        await self.memory.remember(session_id, turn_id, text, final, sorted(terms(text)))

    async def heard(self, session_id: str, turn_id: str, question: str, answer: str) -> None:
        """Remember the turn as the person heard it: the answer cut where they stopped it."""
        await self.memory.amend(session_id, turn_id, question, answer)
