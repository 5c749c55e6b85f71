"""What the ledger counts: units, charges, limits, costs and refusals, as plain values.

Amounts come in three units: `tokens` (an LLM's input + output), `seconds` (compute: GPU seconds on
a GPU, CPU seconds otherwise, a tool's wall time) and `money` (priced from the table the app
publishes into Redis). The ledger stores them as integers: tokens, milliseconds and micro-units
of money.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

UNITS = ("tokens", "seconds", "money")
# How each unit is stored, and how many stored units make one.
STORED = {"tokens": ("tokens", 1), "seconds": ("ms", 1000), "money": ("micros", 1_000_000)}
SCOPES = ("user", "member", "turn")
QUANTITIES = ("input_tokens", "output_tokens", "compute_ms", "cpu_ms", "gpu_ms", "audio_ms", "chars", "calls")

Budget = Mapping[str, float]  # unit -> limit, e.g. {"tokens": 200_000, "money": 1.5}


@dataclass(frozen=True)
class Charge:
    """One metered piece of work: who it is for, what was used. `kind` is llm, tool, stt or tts;
    `item` the model, engine or tool, priced as `kind:item`."""

    kind: str
    item: str
    user: str
    member: str | None = None
    session_id: str | None = None
    turn_id: str | None = None
    ref: str | None = None  # a job id, a call id
    note: str | None = None  # e.g. why a tool call was refused, or that usage was estimated
    input_tokens: int = 0
    output_tokens: int = 0
    compute_ms: int = 0
    cpu_ms: int = 0
    gpu_ms: int = 0
    audio_ms: int = 0
    chars: int = 0
    calls: int = 0

    def quantities(self) -> dict[str, int]:
        return {q: int(getattr(self, q)) for q in QUANTITIES if getattr(self, q)}

    def body(self) -> dict[str, Any]:
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in QUANTITIES}
        return {k: v for k, v in meta.items() if v is not None} | {"q": self.quantities()}


@dataclass(frozen=True)
class Limits:
    """The budgets a charge must fit in, by scope: the user's day, the member's day, the turn."""

    user: Budget | None = None
    member: Budget | None = None
    turn: Budget | None = None

    def stored(self) -> dict[str, dict[str, int]]:
        return {scope: _to_stored(getattr(self, scope) or {}) for scope in SCOPES}


class Refused(Exception):
    """A budget does not allow this charge. `unit` is "frozen" when an operator froze the scope.

    Not a `shared_schemas.Refusal`: billing's record of which budget said no, in its own units,
    not a sentence for a person; the council (`BudgetExceeded`) and the worker's jobs (`JobError`)
    turn it into one, saying when the budget resets."""

    def __init__(
        self, scope: str, name: str, unit: str, spent: float, limit: float, need: float = 0, *, day: str
    ) -> None:
        self.scope, self.name, self.unit, self.day = scope, name, unit, day
        self.spent, self.limit, self.need = spent, limit, need  # spent counts what is held
        what = "frozen" if unit == "frozen" else f"at {spent:g} of {limit:g} {unit}, {need:g} more asked"
        super().__init__(f"{scope} {name!r} budget {what}")


@dataclass(frozen=True)
class Cost:
    tokens: int = 0
    seconds: float = 0.0
    money: float = 0.0


@dataclass(frozen=True)
class Usage:
    """A scope's counters for one day (or one turn), in public units."""

    spent: Cost
    held: Cost
    topped_up: Cost
    quantities: dict[str, int]
    entries: int
    frozen: bool = False
    limits: dict[str, float] | None = None  # an operator's overrides
    members: dict[str, Cost] | None = None  # a user's day, by member

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def resets_at(day: str) -> datetime:
    """When the budgets of `day` reset: the next midnight UTC."""
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1)


def price(prices: Mapping[str, float], charge: Charge) -> int:
    """What `charge` costs in micro-units of money: the same sum the Lua script makes."""
    total = 0.0
    for name, n in charge.quantities().items():
        per = prices.get(f"{charge.kind}:{charge.item}|{name}", prices.get(f"{charge.kind}:*|{name}", 0.0))
        total += n * per
    return int(total + 0.5)


def _to_stored(budget: Budget) -> dict[str, int]:
    unknown = set(budget) - set(UNITS)
    if unknown:
        raise ValueError(f"unknown budget unit {sorted(unknown)}; units: {', '.join(UNITS)}")
    return {STORED[u][0]: int(round(v * STORED[u][1])) for u, v in budget.items() if v is not None}


def to_public(stored: str, value: float) -> float:
    """A stored amount (tokens, ms, micros) in its public unit."""
    per = STORED[unit_of(stored)][1]
    return value / per if per != 1 else value


def unit_of(stored: str) -> str:
    return next(u for u, (s, _) in STORED.items() if s == stored)


def cost_of(values: Mapping[str, float]) -> Cost:
    return Cost(
        tokens=int(values.get("tokens", 0)),
        seconds=values.get("ms", 0) / 1000,
        money=round(values.get("micros", 0) / 1_000_000, 6),
    )


# The ledger export's columns, in order.
COLUMNS = ("id", "at", "kind", "item", "user", "member", "session_id", "turn_id", "ref", "note", *QUANTITIES, *UNITS)


@dataclass(frozen=True)
class Entry:
    """A recorded charge: its id in the day's ledger stream, and what it cost."""

    id: str
    cost: Cost
