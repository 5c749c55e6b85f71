"""Budgets: metering the council's work into the ledger, and keeping it within its limits.

Every LLM call reserves an estimate (its prompt's tokens, conservatively, plus the member's
`max_output_tokens`) before it starts and settles what the server reports after; a tool call is
debited before it runs; speech and transcription jobs are reserved before they are enqueued and
settled by the worker. All of it goes through `billing`, atomically, so parallel turns
cannot overspend. Before a turn deliberates, `shortfall` says whether what is left covers the
whole council, and the graph sends the turn down the fast path, or fails it, when it does not.

Limits: every user's day and every turn from the settings (`COUNCIL_BUDGET_DAILY`,
`COUNCIL_BUDGET_TURN`), each member's day from the members file (`daily_budget`), each in tokens,
seconds or money (through the price table). Days are UTC days.
"""

import asyncio
import logging
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from langchain_core.messages import AIMessageChunk, BaseMessage

from billing import UNITS, AsyncLedger, Charge, Cost, Entry, Limits, Refused, Usage, price, resets_at
from shared_schemas import MAX_AUDIO_SECONDS, SynthesisJob, TranscriptionJob

from .errors import BudgetExceeded, ConfigError
from .members import Council, Member
from .prices import Prices
from .settings import CouncilSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Payer:
    """Whom a turn's spending is recorded against."""

    user: str = "anonymous"
    session_id: str | None = None
    turn_id: str | None = None


class Watcher(Protocol):
    """Told about spending as it happens (the app's Prometheus counters)."""

    def spent(self, charge: Charge, cost: Cost) -> None: ...

    def refused(self, scope: str, unit: str) -> None: ...

    def downgraded(self) -> None: ...


@dataclass(frozen=True)
class Shortfall:
    """What a plan needs that a budget does not have left."""

    scope: str  # user, member or turn
    name: str
    unit: str  # or "frozen"
    need: float = 0
    left: float = 0
    limit: float = 0  # with today's top-ups


def parse_budget(values: Iterable[str], variable: str) -> dict[str, float] | None:
    """ "200000 tokens", "2.5 money" ... as {unit: amount}; None when there are none."""
    budget: dict[str, float] = {}
    for value in values:
        amount, _, unit = value.strip().partition(" ")
        unit = unit.strip()
        try:
            number = float(amount)
        except ValueError:
            number = -1
        if unit not in UNITS or number < 0 or unit in budget:
            raise ConfigError(
                f'{variable} must be "<amount> <unit>" with unit tokens, seconds or money, each once '
                f'(e.g. "200000 tokens, 2 money"), got {value!r}'
            )
        budget[unit] = number
    return budget or None


def input_estimate(messages: Sequence[BaseMessage]) -> int:
    """A generous count of a prompt's tokens: a third of its characters, a few per message."""
    return sum(math.ceil(len(m.text) / 3) + 4 for m in messages)


def _daily(member: Member | None) -> dict[str, float] | None:
    """A member's daily budget, by unit (the members file allows only the units we know)."""
    if member is None or member.daily_budget is None:
        return None
    return {unit: amount for unit, amount in member.daily_budget.items()}


class Budgets:
    @classmethod
    def from_settings(cls, settings: CouncilSettings, ledger: AsyncLedger) -> "Budgets":
        """The budgets of the configured council (the members file) and price table."""
        from . import members
        from . import prices as price_table

        return cls(ledger, settings, members.load(settings.members_file), price_table.load(settings.prices_file))

    @staticmethod
    def check(settings: CouncilSettings) -> None:
        """What `from_settings` would refuse, found before a process starts (ConfigError naming
        the variable or file): the budgets' syntax, the members file, the price table."""
        from . import members
        from . import prices as price_table

        parse_budget(settings.budget_daily, "COUNCIL_BUDGET_DAILY")
        parse_budget(settings.budget_turn, "COUNCIL_BUDGET_TURN")
        members.load(settings.members_file)
        price_table.load(settings.prices_file)

    def __init__(self, ledger: AsyncLedger, settings: CouncilSettings, council: Council, prices: Prices) -> None:
        self.ledger = ledger
        self.council = council
        self.prices = prices
        self.daily = parse_budget(settings.budget_daily, "COUNCIL_BUDGET_DAILY")
        self.turn = parse_budget(settings.budget_turn, "COUNCIL_BUDGET_TURN")
        self.watchers: list[Watcher] = []
        self._published = False

    @property
    def currency(self) -> str:
        return self.prices.currency

    def limits(self, member: Member | None = None) -> Limits:
        return Limits(user=self.daily, member=_daily(member), turn=self.turn)

    def member(self, name: str | None) -> Member | None:
        return next((m for m in self.council.everyone if m.name == name), None)

    async def ready(self) -> None:
        """Publish the price table once per process, before the first charge needs it."""
        if not self._published:
            await self.ledger.publish_prices(self.prices.table)
            self._published = True

    # Turns.

    def estimate(self, member: Member, messages: Sequence[BaseMessage], extra_input: int = 0) -> Charge:
        """An LLM call's charge before it is made: at most this, unless the prompt is unusual."""
        return Charge(
            kind="llm",
            item=member.model,
            user="-",
            member=member.name,
            input_tokens=input_estimate(messages) + extra_input,
            output_tokens=member.max_output_tokens,
        )

    def estimate_text(self, member: Member, chars: int, messages: int, extra_input: int = 0) -> Charge:
        """The same from a prompt's length alone (`messages` messages, `chars` characters in all)."""
        return replace(
            self.estimate(member, [], extra_input), input_tokens=math.ceil(chars / 3) + 4 * messages + extra_input
        )

    async def shortfall(self, payer: Payer, plan: Sequence[Charge], required: Sequence[str] = ()) -> Shortfall | None:
        """What `plan` (estimated charges) needs that the user's or the turn's budget does not
        have, or the daily budget of a member in `required` (others just drop out), or None."""
        wanted = [("user", payer.user), *([("turn", payer.turn_id)] if payer.turn_id and self.turn else [])]
        wanted += [("member", name) for name in required]
        for (scope, name), usage in zip(wanted, await self.ledger.usages(wanted), strict=True):
            if scope == "member":
                member = self.member(name)
                need, limits = self._sum([c for c in plan if c.member == name]), _daily(member)
            else:
                need, limits = self._sum(plan), self.daily if scope == "user" else self.turn
            if (short := self._short(scope, name, usage, limits, need)) is not None:
                return short
        return None

    def downgraded(self, short: Shortfall) -> str:
        """The routed event's reason when the council is more than the budget has left."""
        for watcher in self.watchers:
            watcher.downgraded()
        return f"budget: {self._describe(short)}, so one member answers instead of the whole council"

    async def report(self, scope: str, name: str, day: str | None = None) -> dict[str, Any]:
        """A user's or a member's day as the usage page shows it: spent, held, limits, what is left."""
        day = day or self.ledger.flows.today()
        usage = await self.ledger.usage(scope, name, day)
        member = self.member(name) if scope == "member" else None
        configured = self.daily if scope == "user" else _daily(member)
        limits = {u: v for u, v in (dict(configured or {}) | (usage.limits or {})).items() if v >= 0}
        limits = {u: v + getattr(usage.topped_up, u) for u, v in limits.items()}
        left = {u: round(v - getattr(usage.spent, u) - getattr(usage.held, u), 6) for u, v in limits.items()}
        return {
            scope: name,
            "day": day,
            "currency": self.currency,
            "spent": asdict(usage.spent),
            "held": asdict(usage.held),
            "quantities": usage.quantities,
            "entries": usage.entries,
            "members": {m: asdict(cost) for m, cost in (usage.members or {}).items()},
            "limits": limits,
            "left": left,
            "frozen": usage.frozen,
            "resets_at": resets_at(day).isoformat(),
        }

    # Calls.

    def llm(self, payer: Payer, member: Member, phase: str, messages: Sequence[BaseMessage]) -> "LLMCall":
        """`async with budgets.llm(...) as call:` around one call; feed it chunks (`call.seen`)."""
        return LLMCall(self, payer, member, phase, self.estimate(member, messages))

    async def tool(self, payer: Payer, member: Member, name: str) -> Entry:
        """Debit one call of tool `name`, before it runs; `BudgetExceeded` when it may not."""
        await self.ready()
        charge = self.charge(payer, member, "tool", name, calls=1)
        try:
            entry = await self.ledger.debit(charge, self.limits(member))
        except Refused as exc:
            raise self.exceeded(exc) from None
        self.spent(charge, entry.cost)
        return entry

    async def record(self, charge: Charge) -> Entry:
        """Record `charge` without any check (a refusal, a call already made)."""
        entry = await self.ledger.settle(f"rec-{uuid.uuid4().hex}", charge)
        self.spent(charge, entry.cost)
        return entry

    # Jobs: the app reserves, the worker settles (under the job id).

    async def reserve_job(self, payer: Payer, job: SynthesisJob | TranscriptionJob, audio_bytes: int = 0) -> None:
        await self.ready()
        if isinstance(job, SynthesisJob):
            chars = len(job.text)
            audio_ms = chars * 80  # about 12 characters a second
            charge = self.charge(payer, self.member(job.member), "tts", "*", chars=chars)
        else:
            audio_ms = min(audio_bytes // 4, int(MAX_AUDIO_SECONDS * 1000))  # ~32 kbit/s compressed audio
            charge = self.charge(payer, None, "stt", "*")
        charge = replace(charge, audio_ms=audio_ms, compute_ms=audio_ms // 2, calls=1)
        try:
            await self.ledger.reserve(job.job_id, charge, self.limits(self.member(charge.member)))
        except Refused as exc:
            raise self.exceeded(exc) from None

    async def release_job(self, job_id: str) -> None:
        await self.ledger.release(job_id)

    async def check_user(self, user: str) -> None:
        """`BudgetExceeded` when `user` may not spend at all now (frozen, or the day's budget spent)."""
        await self.ready()
        try:
            await self.ledger.check(user, limits=self.limits())
        except Refused as exc:
            raise self.exceeded(exc) from None

    # Messages.

    def exceeded(self, exc: Refused | Shortfall) -> BudgetExceeded:
        """The error a person sees: which budget, how much of it is gone, when it resets."""
        for watcher in self.watchers:
            watcher.refused(exc.scope, exc.unit)
        if isinstance(exc, Refused) and exc.spent >= exc.limit:
            text = self._describe(Shortfall(exc.scope, exc.name, exc.unit), spent=(exc.spent, exc.limit))
            day = exc.day
        elif isinstance(exc, Refused):
            text = self._describe(Shortfall(exc.scope, exc.name, exc.unit, exc.need, exc.limit - exc.spent))
            day = exc.day
        elif exc.left <= 0 and exc.unit != "frozen":
            text, day = self._describe(exc, spent=(exc.limit - exc.left, exc.limit)), self.ledger.flows.today()
        else:
            text, day = self._describe(exc), self.ledger.flows.today()
        text = text[0].upper() + text[1:]
        if exc.unit == "frozen":
            return BudgetExceeded(f"{text} by an operator, who can unfreeze it.")
        if exc.scope == "turn":
            return BudgetExceeded(f"{text}. Ask something smaller, or in several turns.")
        hours, minutes = divmod(int((resets_at(day) - datetime.now(UTC)).total_seconds()) // 60, 60)
        return BudgetExceeded(f"{text}. It resets at 00:00 UTC, in {max(hours, 0)} h {max(minutes, 0)} min.")

    def _describe(self, short: Shortfall, spent: tuple[float, float] | None = None) -> str:
        whose = {"user": "your daily budget", "turn": "this turn's budget"}.get(short.scope)
        whose = whose or f"{short.name}'s daily budget"
        if short.unit == "frozen":
            return f"{whose} is frozen"
        if spent is not None:
            used, limit = (self._amount(short.unit, v) for v in spent)
            return f"{whose} is spent: {used} of {limit} used"
        left, need = self._amount(short.unit, short.left), self._amount(short.unit, short.need)
        return f"{whose} has {left} left and this needs about {need}"

    def _amount(self, unit: str, value: float) -> str:
        if unit == "tokens":
            return f"{value:,.0f} tokens"
        if unit == "seconds":
            return f"{value:,.1f} s of compute"
        return f"{value:,.4f} {self.currency}"

    # Arithmetic.

    def charge(
        self, payer: Payer, member: Member | None, kind: str, item: str, *, chars: int = 0, calls: int = 0
    ) -> Charge:
        return Charge(
            kind=kind,
            item=item,
            user=payer.user,
            member=member.name if member else None,
            session_id=payer.session_id,
            turn_id=payer.turn_id,
            chars=chars,
            calls=calls,
        )

    def _sum(self, plan: Sequence[Charge]) -> dict[str, float]:
        return {
            "tokens": sum(c.input_tokens + c.output_tokens for c in plan),
            "seconds": sum(c.compute_ms for c in plan) / 1000,
            "money": sum(price(self.prices.table, c) for c in plan) / 1e6,
        }

    def _short(
        self, scope: str, name: str, usage: Usage, configured: dict[str, float] | None, need: dict[str, float]
    ) -> Shortfall | None:
        if usage.frozen:
            return Shortfall(scope, name, "frozen")
        limits = dict(configured or {}) | (usage.limits or {})
        for unit, limit in limits.items():
            if limit < 0 or need[unit] <= 0:
                continue
            limit += getattr(usage.topped_up, unit)
            left = limit - getattr(usage.spent, unit) - getattr(usage.held, unit)
            if need[unit] > left:
                return Shortfall(scope, name, unit, need[unit], max(0.0, left), limit)
        return None

    def spent(self, charge: Charge, cost: Cost) -> None:
        for watcher in self.watchers:
            watcher.spent(charge, cost)


class LLMCall:
    """One metered LLM call: reserves its estimate on entry, settles what was used on exit (what
    the server reported, or an estimate when it reported nothing, say because the call failed)."""

    def __init__(self, budgets: Budgets, payer: Payer, member: Member, phase: str, estimate: Charge) -> None:
        self.budgets = budgets
        self.payer = payer
        self.member = member
        self.estimate = replace(
            estimate, user=payer.user, session_id=payer.session_id, turn_id=payer.turn_id, note=phase
        )
        self.rid = f"{payer.turn_id or 'call'}:{member.name}:{phase}:{uuid.uuid4().hex[:8]}"
        self.text: list[str] = []
        self._extra: list[AIMessageChunk] = []  # the chunks with usage or tool calls (few)
        self._message: AIMessageChunk | None = None

    def seen(self, chunk: AIMessageChunk) -> None:
        """One chunk of the answer. Adding chunks up is slow, so only those that carry usage or
        tool calls are kept whole."""
        self.text.append(chunk.text)
        if chunk.usage_metadata or chunk.tool_call_chunks:
            self._extra.append(chunk.model_copy(update={"content": ""}) if chunk.content else chunk)
        self._message = None

    @property
    def message(self) -> AIMessageChunk | None:
        """The whole answer so far: its text, tool calls and usage; None before any chunk."""
        if self._message is None and (self.text or self._extra):
            self._message = sum(self._extra, AIMessageChunk(content="".join(self.text)))
        return self._message

    async def __aenter__(self) -> "LLMCall":
        await self.budgets.ready()
        try:
            await self.budgets.ledger.reserve(self.rid, self.estimate, self.budgets.limits(self.member))
        except Refused as exc:
            raise self.budgets.exceeded(exc) from None
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Shielded: an interrupted turn still settles (or gives back) what it held.
        message = self.message
        if message is None:  # nothing came back (the server was not reached): nothing to pay
            await asyncio.shield(asyncio.ensure_future(self.budgets.ledger.release(self.rid)))
            return
        if usage := message.usage_metadata:
            charge = replace(self.estimate, input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
        else:  # no report (a failed or interrupted call): the prompt as estimated, ~4 characters a token
            note = f"{self.estimate.note}, estimated" + (", failed" if kind else "")
            charge = replace(self.estimate, output_tokens=math.ceil(len(message.text) / 4), note=note)
        entry = await asyncio.shield(asyncio.ensure_future(self.budgets.ledger.settle(self.rid, charge)))
        self.budgets.spent(charge, entry.cost)
