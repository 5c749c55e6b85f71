"""The deliberation, as a LangGraph graph:

    route ─┬─ fast ───▶ solo ──────────────────────────────────────▶ END
           └─ council ─▶ answer (one task per member, in parallel) ─▶ review
                         review ─▶ critique (one per member, in parallel, optional) ─▶ chair ─▶ END

Nodes stream what they do through LangGraph's stream writer: `Step`s (routed, member_started,
member_done, member_dropped, critique) and `Reply` pieces as each model writes: the chair's are
spoken, and of the members' the first to write (`hear_first`), or all of them (`hear_members`). A member that fails
or runs out of time is dropped with its reason; the turn fails only when no member answers, or
when the chair (or the fast member) cannot.

Every model call is metered and held within budgets (`budgets.py`): when what is left cannot
cover the whole council, `route` sends the turn down the fast path and says why; when it cannot
cover even that, the turn fails with `BudgetExceeded`. Members answer with the tools their level
allows (`tools.py`), a few rounds of tool calls at most.
"""

import asyncio
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from billing import Charge
from shared_schemas import payloads

from . import chat, prompts, providers, router
from .budgets import Budgets, Payer
from .errors import BudgetExceeded, CouncilError, CouncilFailed, LLMUnavailable
from .members import Council, Member
from .memory import Turn
from .replies import Reply, Step
from .settings import CouncilSettings
from .tools import Outcome, Toolbox
from .worker_model import WorkerChatModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dropped:
    """Why a member is out of this turn; `error` when its server could not be used."""

    reason: str
    error: LLMUnavailable | None = None


class Question(TypedDict):
    """A turn's input, the same for every node."""

    question: str
    history: list[Turn]
    topics: list[str]
    voice: str  # the person's voice: for a member without one on the configured engines
    hear_members: bool
    hear_first: bool  # the first member to write is heard (without hear_members)
    critique: bool
    payer: Payer  # whom the turn's spending is recorded against


class Task(Question):
    member: str


class Critique(Task):
    answers: dict[str, str]  # every member's answer, in council order


class TurnState(Question, total=False):
    decision: router.Decision
    answers: Annotated[dict[str, str], operator.or_]
    dropped: Annotated[dict[str, Dropped], operator.or_]
    critiques: Annotated[dict[str, str], operator.or_]
    final: str


class Deliberation:
    """The graph for one council, its models injected; one instance serves every session."""

    def __init__(
        self,
        council: Council,
        models: dict[str, BaseChatModel],
        settings: CouncilSettings,
        budgets: Budgets,
        toolbox: Toolbox,
    ) -> None:
        self.council = council
        self.models = models
        self.settings = settings
        self.budgets = budgets
        self.toolbox = toolbox
        self._heard: dict[str, str] = {}  # turn id -> the member heard first (hear_first)
        self.graph = self._build()

    def _build(self) -> CompiledStateGraph[TurnState, None, TurnState, TurnState]:
        g = StateGraph(TurnState)
        g.add_node("route", self.route)
        g.add_node("solo", self.solo)
        g.add_node("answer", self.answer, input_schema=Task)
        g.add_node("review", self.review)
        g.add_node("critique", self.critique, input_schema=Critique)
        g.add_node("chair", self.chair)
        g.add_edge(START, "route")
        g.add_conditional_edges("route", self._after_route, ["solo", "answer"])
        g.add_edge("answer", "review")
        g.add_conditional_edges("review", self._after_review, ["critique", "chair"])
        g.add_edge("critique", "chair")
        g.add_edge("solo", END)
        g.add_edge("chair", END)
        return g.compile()

    def forget(self, turn_id: str | None) -> None:
        """The turn is over (answered, failed or cut short): who was heard first in it goes."""
        self._heard.pop(turn_id or "", None)

    # Nodes.

    async def route(self, state: TurnState) -> dict[str, Any]:
        chair, question = self.council.chair, state["question"]
        decision = router.by_rules(question, state["topics"])
        try:
            if decision is None:
                async with self.budgets.llm(state["payer"], chair, "router", prompts.router(question)) as call:
                    decision = await router.decide(
                        question,
                        self._model(chair, state["payer"]),
                        state["topics"],
                        self.settings.router_timeout_s,
                        call.seen,
                    )
        except BudgetExceeded:
            raise
        except Exception as exc:  # the edge: a router failure becomes a decision, or LLMUnavailable
            if (error := providers.unavailable(exc, chair, self.settings)) is not None:
                raise error from exc
            log.warning("router model failed; the council answers", exc_info=True)
            decision = router.Decision("council", f"no rule matched and the router model failed: {exc!r}", "rules")
        decision = await self._within_budget(state, decision)
        get_stream_writer()(Step(decision.payload()))
        return {"decision": decision}

    async def _within_budget(self, state: TurnState, decision: router.Decision) -> router.Decision:
        """The decision, or the fast path when the council costs more than is left; or
        `BudgetExceeded` when not even the fast path is covered."""
        payer, fast = state["payer"], [self.council.fast.name]
        if decision.route == "council":
            short = await self.budgets.shortfall(payer, self._plan(state, "council"), [self.council.chair.name])
            if short is None:
                return decision
            if await self.budgets.shortfall(payer, self._plan(state, "fast"), fast) is None:
                return router.Decision("fast", self.budgets.downgraded(short), "budget")
        if (short := await self.budgets.shortfall(payer, self._plan(state, "fast"), fast)) is not None:
            raise self.budgets.exceeded(short)
        return decision

    def _plan(self, state: TurnState, route: router.Route) -> list[Charge]:
        """What a route's model calls will cost at most, estimated from the prompts' lengths
        before any is made (building the prompts would cost more than the estimate is worth)."""
        q, history = state["question"], state["history"]
        chars = len(q) + sum(len(t.user) + len(t.answer) for t in history) + sum(map(len, state["topics"])) + 80
        count = 2 + 2 * len(history)

        def answer(m: Member, extra: int = 0, more_chars: int = 0) -> Charge:
            return self.budgets.estimate_text(m, len(m.persona) + chars + more_chars, count, extra)

        if route == "fast":
            return [answer(self.council.fast)]
        members, chair = self.council.members, self.council.chair
        written = sum(m.max_output_tokens for m in members)
        plan = [answer(m) for m in members]
        if state["critique"] and len(members) > 1:
            critique = len(prompts.CRITIQUE) + len(q) + 40
            plan += [self.budgets.estimate_text(m, len(m.persona) + critique, 2, written) for m in members]
            written *= 2
        return [*plan, answer(chair, written, len(prompts.SYNTHESIS) + 80 * len(members))]

    async def solo(self, state: TurnState) -> dict[str, Any]:
        member = self.council.fast
        messages = prompts.answer(member, state["question"], state["history"], state["topics"])
        text = await self._required(
            member, "solo", messages, state["voice"], self.settings.chair_timeout_s, state["payer"]
        )
        return {"final": text}

    async def answer(self, state: Task) -> dict[str, Any]:
        member = self.council[state["member"]]
        messages = prompts.answer(member, state["question"], state["history"], state["topics"])
        voice = member.voice(self.settings.tts_engines, state["voice"])
        timeout = self.settings.member_timeout_s
        speak, turn = state["hear_members"], state["payer"].turn_id
        first_of = turn if not speak and state["hear_first"] else None
        try:
            text = await self._stream(member, "answer", messages, voice, speak, timeout, state["payer"], first_of)
        except Exception as exc:  # the edge: any failure drops this member, with its reason
            dropped = self._drop(member, "answer", exc, timeout)
            log.warning("%s dropped: %s", member.name, dropped.reason, exc_info=dropped.error is None)
            return {"dropped": {member.name: dropped}}
        return {"answers": {member.name: text}}

    def review(self, state: TurnState) -> dict[str, Any]:
        if state.get("answers"):
            return {}
        dropped = state.get("dropped", {})
        errors = [d.error for d in dropped.values() if d.error is not None]
        if errors and len(errors) == len(dropped):
            raise LLMUnavailable(" ".join(dict.fromkeys(e.message for e in errors)))
        reasons = "; ".join(f"{name}: {d.reason}" for name, d in dropped.items())
        raise CouncilFailed(f"No member of the council could answer ({reasons}). Try again in a moment.")

    async def critique(self, state: Critique) -> dict[str, Any]:
        member = self.council[state["member"]]
        answers = state["answers"]  # in council order, as the chair sees them
        labels = prompts.labels(list(answers))
        others = {labels[name]: text for name, text in answers.items() if name != member.name}
        timeout = self.settings.critique_timeout_s
        try:
            messages = prompts.critique(member, state["question"], others)
            text = await self._complete(member, messages, timeout, state["payer"])
        except Exception as exc:  # the edge: a failed critique leaves the member's answer in
            dropped = self._drop(member, "critique", exc, timeout)
            log.warning("%s's critique dropped: %s", member.name, dropped.reason, exc_info=dropped.error is None)
            return {}
        get_stream_writer()(Step(payloads.Critique(member=member.name, text=text)))
        return {"critiques": {member.name: text}}

    async def chair(self, state: TurnState) -> dict[str, Any]:
        chair = self.council.chair
        answers = self._in_order(state["answers"])
        labels = prompts.labels(list(answers))
        labelled = {labels[name]: (self.council[name], text) for name, text in answers.items()}
        critiques = state.get("critiques", {})
        messages = prompts.synthesis(chair, state["question"], state["history"], state["topics"], labelled, critiques)
        text = await self._required(
            chair, "synthesis", messages, state["voice"], self.settings.chair_timeout_s, state["payer"]
        )
        return {"final": text}

    # Edges.

    def _after_route(self, state: TurnState) -> str | list[Send]:
        if state["decision"].route == "fast":
            return "solo"
        return [Send("answer", self._task(state, m)) for m in self.council.members]

    def _after_review(self, state: TurnState) -> str | list[Send]:
        answers = state["answers"]
        if not state["critique"] or len(answers) < 2:
            return "chair"
        ordered = self._in_order(answers)
        return [Send("critique", self._task(state, self.council[name]) | {"answers": ordered}) for name in ordered]

    def _in_order(self, answers: dict[str, str]) -> dict[str, str]:
        """Answers in council order, whatever order they came in: their letters depend on it."""
        return {m.name: answers[m.name] for m in self.council.members if m.name in answers}

    def _task(self, state: TurnState, member: Member) -> dict[str, Any]:
        # (the keys come from the TypedDict itself, which mypy cannot follow)
        return {key: state[key] for key in Question.__annotations__} | {"member": member.name}  # type: ignore[literal-required]

    # Talking to models.

    async def _stream(
        self,
        member: Member,
        phase: str,
        messages: list[BaseMessage],
        voice: str,
        speak: bool,
        timeout_s: float,
        payer: Payer,
        first_of: str | None = None,
    ) -> str:
        """`first_of`: a turn whose first member to write is heard (`hear_first`), even unasked."""
        write = get_stream_writer()
        write(Step(payloads.MemberStarted(member=member.name, role=member.role, voice=voice, phase=phase)))
        started = time.perf_counter()

        def heard(piece: str) -> bool:
            if speak or first_of is None or not piece.strip() and first_of not in self._heard:
                return speak
            return self._heard.setdefault(first_of, member.name) == member.name

        async with asyncio.timeout(timeout_s):
            text, used = await self._talk(
                member, phase, messages, payer, lambda piece: write(Reply(member.name, voice, piece, heard(piece)))
            )
        if not text:
            raise CouncilFailed(f"{member.name} answered nothing")
        elapsed = round(time.perf_counter() - started, 3)
        done = payloads.MemberDone(member=member.name, phase=phase, chars=len(text), elapsed_s=elapsed)
        if used:  # (`tools` only when it called some)
            done = done.model_copy(update={"tools": [payloads.ToolUse(**asdict(outcome)) for outcome in used]})
        write(Step(done))
        return text

    async def _complete(self, member: Member, messages: list[BaseMessage], timeout_s: float, payer: Payer) -> str:
        async with asyncio.timeout(timeout_s):
            text, _ = await self._talk(member, "critique", messages, payer, tools=False)
        if not text:
            raise CouncilFailed(f"{member.name} answered nothing")
        return text

    async def _talk(
        self,
        member: Member,
        phase: str,
        messages: list[BaseMessage],
        payer: Payer,
        on_piece: Callable[[str], None] | None = None,
        tools: bool = True,
    ) -> tuple[str, list[Outcome]]:
        """One member's answer: metered model calls, with rounds of tool calls in between while
        the model asks for them. Its text, and what came of each tool call."""
        model: chat.ChatModel = self._model(member, payer)
        offered = self.toolbox.offered(member) if tools else []
        if offered:
            model = self.models[member.name].bind_tools([t.schema for t in offered])
        messages, parts, used = list(messages), list[str](), list[Outcome]()
        for round_ in range(self.settings.tool_rounds + 1):
            if parts and not parts[-1][-1:].isspace():
                parts.append(" ")  # the text of the next round goes on after a space
                if on_piece is not None:
                    on_piece(" ")
            async with self.budgets.llm(payer, member, phase, messages) as call:
                async for piece in chat.pieces(model, messages, call.seen):
                    parts.append(piece)
                    if on_piece is not None:
                        on_piece(piece)
            message = call.message
            asked = message.tool_calls if message is not None else []
            if message is None or not asked or round_ == self.settings.tool_rounds:
                break
            messages.append(AIMessage(content=message.content, tool_calls=asked))
            for tool_call in asked:
                reply, outcome = await self.toolbox.run(tool_call, member, payer)
                messages.append(reply)
                used.append(outcome)
        return "".join(parts).strip(), used

    def _model(self, member: Member, payer: Payer) -> chat.ChatModel:
        """The member's model for one call: a worker model carries whom the call is for."""
        model = self.models[member.name]
        return model.for_call(payer) if isinstance(model, WorkerChatModel) else model

    async def _required(
        self,
        member: Member,
        phase: str,
        messages: list[BaseMessage],
        fallback_voice: str,
        timeout_s: float,
        payer: Payer,
    ) -> str:
        """A spoken answer the turn cannot do without: its failure fails the turn, clearly."""
        voice = member.voice(self.settings.tts_engines, fallback_voice)
        try:
            return await self._stream(member, phase, messages, voice, True, timeout_s, payer)
        except Exception as exc:  # the edge: translated into the council's own error
            dropped = self._drop(member, phase, exc, timeout_s)
            if dropped.error is not None:
                raise dropped.error from exc
            if isinstance(exc, CouncilError):
                raise
            raise CouncilFailed(f"{member.name} could not answer ({dropped.reason}). Try again.") from exc

    def _drop(self, member: Member, phase: str, exc: Exception, timeout_s: float) -> Dropped:
        error = providers.unavailable(exc, member, self.settings)
        if error is not None:
            reason = error.message
        elif isinstance(exc, TimeoutError):
            reason = f"timed out after {timeout_s:g} s"
        elif isinstance(exc, BudgetExceeded):
            reason = exc.message
        else:
            reason = f"{type(exc).__name__}: {exc}"
        get_stream_writer()(Step(payloads.MemberDropped(member=member.name, reason=reason, phase=phase)))
        return Dropped(reason, error)
