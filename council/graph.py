"""The deliberation, as a LangGraph graph:

    route ─┬─ fast ───▶ solo ──────────────────────────────────────▶ END
           └─ council ─▶ answer (one task per member, in parallel) ─▶ review
                         review ─▶ critique (one per member, in parallel, optional) ─▶ chair ─▶ END

Nodes stream what they do through LangGraph's stream writer: `Step`s (routed, member_started,
member_done, member_dropped, critique) and `Reply` pieces as each model writes. A member that fails
or runs out of time is dropped with its reason; the turn fails only when no member answers, or
when the chair (or the fast member) cannot.
"""

import asyncio
import logging
import operator
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from . import chat, prompts, providers, router
from .errors import CouncilError, CouncilFailed, LLMUnavailable
from .members import Council, Member
from .memory import Turn
from .replies import Reply, Step
from .settings import CouncilSettings

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
    critique: bool


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

    def __init__(self, council: Council, models: dict[str, BaseChatModel], settings: CouncilSettings) -> None:
        self.council = council
        self.models = models
        self.settings = settings
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

    # Nodes.

    async def route(self, state: TurnState) -> dict[str, Any]:
        chair = self.council.chair
        try:
            decision = await router.decide(
                state["question"], self.models[chair.name], state["topics"], self.settings.router_timeout_s
            )
        except Exception as exc:  # the edge: a router failure becomes a decision, or LLMUnavailable
            if (error := providers.unavailable(exc, chair, self.settings)) is not None:
                raise error from exc
            log.warning("router model failed; the council answers", exc_info=True)
            decision = router.Decision("council", f"no rule matched and the router model failed: {exc!r}", "rules")
        get_stream_writer()(Step("routed", decision.payload()))
        return {"decision": decision}

    async def solo(self, state: TurnState) -> dict[str, Any]:
        member = self.council.fast
        messages = prompts.answer(member, state["question"], state["history"], state["topics"])
        text = await self._required(member, "solo", messages, state["voice"], self.settings.chair_timeout_s)
        return {"final": text}

    async def answer(self, state: Task) -> dict[str, Any]:
        member = self.council[state["member"]]
        messages = prompts.answer(member, state["question"], state["history"], state["topics"])
        voice = member.voice(self.settings.tts_engines, state["voice"])
        timeout = self.settings.member_timeout_s
        try:
            text = await self._stream(member, "answer", messages, voice, state["hear_members"], timeout)
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
            text = await self._complete(member, prompts.critique(member, state["question"], others), timeout)
        except Exception as exc:  # the edge: a failed critique leaves the member's answer in
            dropped = self._drop(member, "critique", exc, timeout)
            log.warning("%s's critique dropped: %s", member.name, dropped.reason, exc_info=dropped.error is None)
            return {}
        get_stream_writer()(Step("critique", {"member": member.name, "text": text}))
        return {"critiques": {member.name: text}}

    async def chair(self, state: TurnState) -> dict[str, Any]:
        chair = self.council.chair
        answers = self._in_order(state["answers"])
        labels = prompts.labels(list(answers))
        labelled = {labels[name]: (self.council[name], text) for name, text in answers.items()}
        critiques = state.get("critiques", {})
        messages = prompts.synthesis(chair, state["question"], state["history"], state["topics"], labelled, critiques)
        text = await self._required(chair, "synthesis", messages, state["voice"], self.settings.chair_timeout_s)
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
        return {key: state[key] for key in Question.__annotations__} | {"member": member.name}  # type: ignore[literal-required]

    # Talking to models.

    async def _stream(
        self, member: Member, phase: str, messages: list[BaseMessage], voice: str, speak: bool, timeout_s: float
    ) -> str:
        write = get_stream_writer()
        write(Step("member_started", {"member": member.name, "role": member.role, "voice": voice, "phase": phase}))
        started = time.perf_counter()
        parts: list[str] = []
        async with asyncio.timeout(timeout_s):
            async for piece in chat.pieces(self.models[member.name], messages):
                parts.append(piece)
                write(Reply(member.name, voice, piece, speak))
        text = "".join(parts).strip()
        if not text:
            raise CouncilFailed(f"{member.name} answered nothing")
        elapsed = round(time.perf_counter() - started, 3)
        write(Step("member_done", {"member": member.name, "phase": phase, "chars": len(text), "elapsed_s": elapsed}))
        return text

    async def _complete(self, member: Member, messages: list[BaseMessage], timeout_s: float) -> str:
        async with asyncio.timeout(timeout_s):
            text = await chat.complete(self.models[member.name], messages)
        if not text:
            raise CouncilFailed(f"{member.name} answered nothing")
        return text

    async def _required(
        self, member: Member, phase: str, messages: list[BaseMessage], fallback_voice: str, timeout_s: float
    ) -> str:
        """A spoken answer the turn cannot do without: its failure fails the turn, clearly."""
        voice = member.voice(self.settings.tts_engines, fallback_voice)
        try:
            return await self._stream(member, phase, messages, voice, True, timeout_s)
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
        else:
            reason = f"{type(exc).__name__}: {exc}"
        get_stream_writer()(Step("member_dropped", {"member": member.name, "reason": reason, "phase": phase}))
        return Dropped(reason, error)
