"""The ledger: what the council spends, metered against the user, the member and the turn, with
budgets that cannot be overspent, shared by the app (LLM calls, tools) and the workers (jobs).

Every change is one Lua call, atomic in Redis:

- `debit`: check every budget that applies (the user's day, the member's day, the turn) and, only
  if all hold, add the charge to their counters and append it to the day's ledger stream.
- `reserve`: the same check, holding an estimate instead of spending it (before an LLM call or a
  job); `settle` releases the hold and records what was really used, without a check; `release`
  drops a hold. Holds that nobody settles expire. Because holds count against budgets, parallel
  turns cannot overspend: the 50th of 50 parallel debits sees the 49 before it.
- `check`: refuse when a budget is frozen or already spent, change nothing.

Counters are per UTC day, so budgets reset at midnight UTC; an operator can freeze a user or a
member, top up today's budget, or set a limit that overrides the configured one.

Amounts are in tokens, seconds and money (see `_charges.py`); money comes from the price table the
app publishes into Redis: the script prices each charge, so a worker needs no price file.
"""

import json
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TypeVar

import redis
import redis.asyncio

from ._charges import (
    QUANTITIES,
    STORED,
    Charge,
    Cost,
    Entry,
    Limits,
    Refused,
    Usage,
    cost_of,
    day_of,
    to_public,
    unit_of,
)

RETENTION_S = 92 * 24 * 3600  # daily counters and ledger streams; export what must be kept longer
TURN_TTL_S = 2 * 24 * 3600
HOLD_TTL_S = 600  # a hold nobody settles is released after this long
STREAM_MAXLEN = 200_000  # ledger entries kept per day

# The one Lua script (its KEYS and ARGV are documented at its top).
_SPEND = (resources.files("billing") / "spend.lua").read_text()

# A generator of Redis requests: ("script", keys, args), ("pipeline", transaction, [requests]) or
# (command, *args), sent Redis's reply to each; the shells send them. It returns a T.
T = TypeVar("T")
Request = tuple[Any, ...]
Flow = Generator[Request, Any, T]
Clock = Callable[[], float]


class _Flows:
    """The ledger's logic as generators of Redis requests; `Ledger` and `AsyncLedger` send them."""

    def __init__(self, prefix: str = "council", clock: Clock = time.time) -> None:
        self.prefix = prefix
        self.clock = clock

    # Keys.

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def day_key(self, day: str, scope: str, name: str) -> str:
        return self._k("usage", day, scope, name)

    def turn_key(self, turn_id: str) -> str:
        return self._k("usage", "turn", turn_id)

    def budget_key(self, scope: str, name: str) -> str:
        return self._k("budget", scope, name)

    def stream_key(self, day: str) -> str:
        return self._k("ledger", day)

    @property
    def prices_key(self) -> str:
        return self._k("prices")

    def today(self) -> str:
        return day_of(self.clock())

    # Spending.

    def _spend(self, mode: str, charge: Charge | None, limits: Limits | None, rid: str = "") -> Flow[list[Any]]:
        now = self.clock()
        day = day_of(now)
        charge = charge or Charge(kind="-", item="-", user="-")
        member, turn = charge.member or "", charge.turn_id or ""
        keys = (
            self.day_key(day, "user", charge.user),
            self.day_key(day, "member", member or "-"),
            self.turn_key(turn or "-"),
            self.budget_key("user", charge.user),
            self.budget_key("member", member or "-"),
            self.stream_key(day),
            self._k("holds"),
            self._k("holds", "expiry"),
            self._k("usage", day, "users"),
            self._k("usage", day, "members"),
            self.prices_key,
        )
        args = (
            mode,
            rid,
            repr(now),
            RETENTION_S,
            TURN_TTL_S,
            HOLD_TTL_S,
            "1" if member else "0",
            "1" if turn else "0",
            json.dumps((limits or Limits()).stored()),
            json.dumps(charge.body()),
            STREAM_MAXLEN,
        )
        result: list[Any] = yield ("script", keys, args)
        if int(result[0]) == 1:
            return result
        scope, name, unit, spent, cap, need = (v.decode() if isinstance(v, bytes) else v for v in result[1:])
        if unit == "frozen":
            raise Refused(scope, name, "frozen", 0, 0, day=day)
        amounts = (to_public(unit, float(v)) for v in (spent, cap, need))
        raise Refused(scope, name, unit_of(unit), *amounts, day=day)

    def debit(self, charge: Charge, limits: Limits | None = None) -> Flow[Entry]:
        result = yield from self._spend("debit", charge, limits)
        return _entry(result)

    def settle(self, rid: str, charge: Charge) -> Flow[Entry]:
        result = yield from self._spend("settle", charge, None, rid)
        return _entry(result)

    def reserve(self, rid: str, charge: Charge, limits: Limits | None = None) -> Flow[Cost]:
        result = yield from self._spend("reserve", charge, limits, rid)
        return cost_of({"tokens": int(result[1]), "ms": int(result[2]), "micros": int(result[3])})

    def release(self, rid: str) -> Flow[bool]:
        result = yield from self._spend("release", None, None, rid)
        return bool(int(result[1]))

    def check(
        self, user: str, member: str | None = None, turn_id: str | None = None, limits: Limits | None = None
    ) -> Flow[None]:
        charge = Charge(kind="-", item="-", user=user, member=member, turn_id=turn_id)
        yield from self._spend("check", charge, limits)

    # Reading.

    def usage(self, scope: str, name: str, day: str | None = None) -> Flow[Usage]:
        """A user's or a member's day; scope "turn" reads a turn (no day)."""
        found = yield from self.usages([(scope, name)], day)
        return found[0]

    def usages(self, wanted: list[tuple[str, str]], day: str | None = None) -> Flow[list[Usage]]:
        """Several (scope, name) at once, in one round trip."""
        day = day or self.today()
        reads: list[Request] = []
        for scope, name in wanted:
            key = self.turn_key(name) if scope == "turn" else self.day_key(day, scope, name)
            conf = self.budget_key(scope if scope != "turn" else "-", name if scope != "turn" else "-")
            reads += [("hgetall", key), ("hgetall", conf)]
        raw = yield ("pipeline", False, reads)
        return [_usage(_decode(raw[i]), _decode(raw[i + 1])) for i in range(0, len(raw), 2)]

    def names(self, scope: str, day: str | None = None) -> Flow[list[str]]:
        """Users (scope "user") or members who spent anything on `day`."""
        raw = yield ("smembers", self._k("usage", day or self.today(), f"{scope}s"))
        return sorted(v.decode() if isinstance(v, bytes) else v for v in raw)

    def entries(self, day: str | None = None, user: str | None = None) -> Flow[list[dict[str, Any]]]:
        """The day's ledger, oldest first, optionally one user's."""
        raw = yield ("xrange", self.stream_key(day or self.today()))
        out = []
        for entry_id, data in raw:
            body = json.loads(data.get(b"j", data.get("j")))
            if user is not None and body.get("user") != user:
                continue
            out.append(_public_entry(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, body))
        return out

    # An operator's levers.

    def freeze(self, scope: str, name: str, frozen: bool = True) -> Flow[None]:
        key = self.budget_key(scope, name)
        yield ("hset", key, "frozen", "1") if frozen else ("hdel", key, "frozen")

    def set_limit(self, scope: str, name: str, unit: str, value: float | None) -> Flow[None]:
        """An operator's daily limit for one user or member, over the configured one; None removes
        it, a negative value lifts the limit."""
        stored, per = STORED[unit]
        key = self.budget_key(scope, name)
        if value is None:
            yield ("hdel", key, f"limit:{stored}")
        else:
            yield ("hset", key, f"limit:{stored}", int(round(value * per)) if value >= 0 else -1)

    def top_up(self, scope: str, name: str, unit: str, amount: float, day: str | None = None) -> Flow[float]:
        """Raise today's limit of a user or a member by `amount` (it resets with the day)."""
        stored, per = STORED[unit]
        key = self.day_key(day or self.today(), scope, name)
        total = yield ("hincrby", key, f"topup:{stored}", int(round(amount * per)))
        yield ("expire", key, RETENTION_S)
        return to_public(stored, int(total))

    def publish_prices(self, prices: Mapping[str, float]) -> Flow[None]:
        """The price table (`kind:item|quantity` -> micro-units of money per unit), replacing the
        one in Redis; the script prices every charge with it."""
        table = {k: repr(float(v)) for k, v in prices.items()}
        yield (
            "pipeline",
            True,
            [("delete", self.prices_key), *([("hset", self.prices_key, None, None, table)] * bool(table))],
        )

    def prices(self) -> Flow[dict[str, float]]:
        raw = yield ("hgetall", self.prices_key)
        return {k: float(v) for k, v in _decode(raw).items()}


def _decode(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()
    }


def _entry(result: list[Any]) -> Entry:
    ident = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
    return Entry(ident, cost_of({"tokens": int(result[2]), "ms": int(result[3]), "micros": int(result[4])}))


def _usage(raw: dict[str, str], conf: dict[str, str]) -> Usage:
    def group(prefix: str) -> Cost:
        return cost_of({u: int(raw.get(f"{prefix}{u}", 0)) for u in ("tokens", "ms", "micros")})

    members: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        if field.startswith("m:"):
            name, _, unit = field[2:].rpartition(":")
            members.setdefault(name, {})[unit] = int(value)
    limits = {unit_of(f[6:]): to_public(f[6:], float(v)) for f, v in conf.items() if f.startswith("limit:")}
    return Usage(
        spent=group("used:"),
        held=group("held:"),
        topped_up=group("topup:"),
        quantities={f[2:]: int(v) for f, v in raw.items() if f.startswith("q:")},
        entries=int(raw.get("entries", 0)),
        frozen=conf.get("frozen") == "1",
        limits=limits or None,
        members={name: cost_of(values) for name, values in sorted(members.items())} or None,
    )


def _public_entry(entry_id: str, body: dict[str, Any]) -> dict[str, Any]:
    cost = cost_of(body)
    quantities = body.get("q") or {}
    meta = {k: body.get(k) for k in ("kind", "item", "user", "member", "session_id", "turn_id", "ref", "note")}
    at = datetime.fromtimestamp(float(body["at"]), UTC).isoformat()
    return {"id": entry_id, "at": at, **meta, **{q: int(quantities.get(q, 0)) for q in QUANTITIES}} | asdict(cost)


class Ledger:
    """The ledger on a blocking client: the workers record their jobs with it."""

    def __init__(self, connection: redis.Redis, prefix: str = "council", clock: Clock = time.time) -> None:
        self.flows = _Flows(prefix, clock)
        self.connection = connection
        self._script = connection.register_script(_SPEND)

    def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(self._send(request))
        except StopIteration as done:
            value: T = done.value  # what the flow returned
            return value

    def _send(self, request: Request) -> Any:
        name, *args = request
        if name == "script":
            return self._script(keys=args[0], args=args[1])
        if name == "pipeline":
            with self.connection.pipeline(transaction=args[0]) as pipe:
                for command, *params in args[1]:
                    getattr(pipe, command)(*params)
                return pipe.execute()
        return getattr(self.connection, name)(*args)

    def debit(self, charge: Charge, limits: Limits | None = None) -> Entry:
        return self._run(self.flows.debit(charge, limits))

    def settle(self, rid: str, charge: Charge) -> Entry:
        return self._run(self.flows.settle(rid, charge))

    def reserve(self, rid: str, charge: Charge, limits: Limits | None = None) -> Cost:
        return self._run(self.flows.reserve(rid, charge, limits))

    def release(self, rid: str) -> bool:
        return self._run(self.flows.release(rid))

    def check(
        self, user: str, member: str | None = None, turn_id: str | None = None, limits: Limits | None = None
    ) -> None:
        self._run(self.flows.check(user, member, turn_id, limits))

    def usage(self, scope: str, name: str, day: str | None = None) -> Usage:
        return self._run(self.flows.usage(scope, name, day))

    def usages(self, wanted: list[tuple[str, str]], day: str | None = None) -> list[Usage]:
        return self._run(self.flows.usages(wanted, day))

    def names(self, scope: str, day: str | None = None) -> list[str]:
        return self._run(self.flows.names(scope, day))

    def entries(self, day: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        return self._run(self.flows.entries(day, user))

    def freeze(self, scope: str, name: str, frozen: bool = True) -> None:
        self._run(self.flows.freeze(scope, name, frozen))

    def set_limit(self, scope: str, name: str, unit: str, value: float | None) -> None:
        self._run(self.flows.set_limit(scope, name, unit, value))

    def top_up(self, scope: str, name: str, unit: str, amount: float, day: str | None = None) -> float:
        return self._run(self.flows.top_up(scope, name, unit, amount, day))

    def publish_prices(self, prices: Mapping[str, float]) -> None:
        self._run(self.flows.publish_prices(prices))

    def prices(self) -> dict[str, float]:
        return self._run(self.flows.prices())


class AsyncLedger:
    """The ledger on an asyncio client: the app's turns, tools and usage pages."""

    def __init__(self, connection: redis.asyncio.Redis, prefix: str = "council", clock: Clock = time.time) -> None:
        self.flows = _Flows(prefix, clock)
        self.connection = connection
        self._script = connection.register_script(_SPEND)

    async def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(await self._send(request))
        except StopIteration as done:
            value: T = done.value  # what the flow returned
            return value

    async def _send(self, request: Request) -> Any:
        name, *args = request
        if name == "script":
            return await self._script(keys=args[0], args=args[1])
        if name == "pipeline":
            async with self.connection.pipeline(transaction=args[0]) as pipe:
                for command, *params in args[1]:
                    getattr(pipe, command)(*params)
                return await pipe.execute()
        return await getattr(self.connection, name)(*args)

    async def debit(self, charge: Charge, limits: Limits | None = None) -> Entry:
        return await self._run(self.flows.debit(charge, limits))

    async def settle(self, rid: str, charge: Charge) -> Entry:
        return await self._run(self.flows.settle(rid, charge))

    async def reserve(self, rid: str, charge: Charge, limits: Limits | None = None) -> Cost:
        return await self._run(self.flows.reserve(rid, charge, limits))

    async def release(self, rid: str) -> bool:
        return await self._run(self.flows.release(rid))

    async def check(
        self, user: str, member: str | None = None, turn_id: str | None = None, limits: Limits | None = None
    ) -> None:
        await self._run(self.flows.check(user, member, turn_id, limits))

    async def usage(self, scope: str, name: str, day: str | None = None) -> Usage:
        return await self._run(self.flows.usage(scope, name, day))

    async def usages(self, wanted: list[tuple[str, str]], day: str | None = None) -> list[Usage]:
        return await self._run(self.flows.usages(wanted, day))

    async def names(self, scope: str, day: str | None = None) -> list[str]:
        return await self._run(self.flows.names(scope, day))

    async def entries(self, day: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        return await self._run(self.flows.entries(day, user))

    async def freeze(self, scope: str, name: str, frozen: bool = True) -> None:
        await self._run(self.flows.freeze(scope, name, frozen))

    async def set_limit(self, scope: str, name: str, unit: str, value: float | None) -> None:
        await self._run(self.flows.set_limit(scope, name, unit, value))

    async def top_up(self, scope: str, name: str, unit: str, amount: float, day: str | None = None) -> float:
        return await self._run(self.flows.top_up(scope, name, unit, amount, day))

    async def publish_prices(self, prices: Mapping[str, float]) -> None:
        await self._run(self.flows.publish_prices(prices))

    async def prices(self) -> dict[str, float]:
        return await self._run(self.flows.prices())
