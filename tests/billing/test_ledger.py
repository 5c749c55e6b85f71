"""The ledger on the real test Redis: atomic spending under concurrency, holds, daily reset,
an operator's freeze, top-up and limits, prices, and the exported ledger matching the counters."""

import asyncio
import threading
import uuid

import pytest

from billing import COLUMNS, HOLD_TTL_S, AsyncLedger, Charge, Ledger, Limits, Refused, day_of, price, resets_at

DAY = 1_795_000_000.0  # 2026-11-18 08:26:40 UTC


class Clock:
    def __init__(self, at: float = DAY) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(connection, prefix, clock) -> Ledger:
    return Ledger(connection, prefix, clock)


def llm(user="alice", member="Ada", tokens=30, turn=None, model="llama3.2") -> Charge:
    return Charge(
        kind="llm", item=model, user=user, member=member, turn_id=turn, input_tokens=tokens - 10, output_tokens=10
    )


@pytest.mark.timeout(60)
def test_fifty_parallel_debits_from_threads_never_overspend(ledger):
    limits = Limits(user={"tokens": 1000})
    done, refused = [], []
    barrier = threading.Barrier(50)

    def spend() -> None:
        barrier.wait()
        try:
            done.append(ledger.debit(llm(), limits))
        except Refused as exc:
            refused.append(exc)

    threads = [threading.Thread(target=spend) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 33 x 30 = 990 fit in 1000; the 34th would make 1020.
    assert (len(done), len(refused)) == (33, 17)
    usage = ledger.usage("user", "alice")
    assert usage.spent.tokens == 990 and usage.entries == 33
    assert usage.quantities == {"input_tokens": 660, "output_tokens": 330}
    assert {(r.scope, r.name, r.unit, r.limit) for r in refused} == {("user", "alice", "tokens", 1000)}
    assert all(r.spent == 990 for r in refused)
    entries = ledger.entries()
    assert len(entries) == 33 and sum(e["tokens"] for e in entries) == 990
    assert len({e["id"] for e in entries}) == 33


@pytest.mark.timeout(60)
def test_fifty_parallel_async_debits_in_money_never_overspend(settings, prefix):
    async def scenario():
        conn = settings.connect_async()
        try:
            ledger = AsyncLedger(conn, prefix, Clock())
            await ledger.publish_prices({"llm:gpt|input_tokens": 2.5, "llm:gpt|output_tokens": 10.0})
            # Each charge: 20 x 2.5 + 10 x 10 = 150 micro-units; 0.005 money = 5000 micros fits 33.
            charge = llm(model="gpt")
            results = await asyncio.gather(
                *(ledger.debit(charge, Limits(user={"money": 0.005})) for _ in range(50)), return_exceptions=True
            )
            return results, await ledger.usage("user", "alice")
        finally:
            await conn.aclose()

    results, usage = asyncio.run(scenario())
    spent = [r for r in results if not isinstance(r, Exception)]
    assert len(spent) == 33 and all(isinstance(r, Refused) for r in results if r not in spent)
    assert {r.cost.money for r in spent} == {0.00015}
    assert usage.spent.money == pytest.approx(0.00495) and usage.spent.tokens == 33 * 30


def test_a_charge_is_checked_against_every_budget_that_applies(ledger):
    limits = Limits(user={"tokens": 10_000}, member={"tokens": 100}, turn={"tokens": 50})
    ledger.debit(llm(turn="turn-1"), limits)
    with pytest.raises(Refused) as turn_full:
        ledger.debit(llm(turn="turn-1"), limits)
    assert (turn_full.value.scope, turn_full.value.name, turn_full.value.spent) == ("turn", "turn-1", 30)
    ledger.debit(llm(turn="turn-2"), limits)
    ledger.debit(llm(turn="turn-3"), limits)
    with pytest.raises(Refused) as member_full:
        ledger.debit(llm(turn="turn-4"), limits)
    assert (member_full.value.scope, member_full.value.name, member_full.value.limit) == ("member", "Ada", 100)
    # Another member still may; the user's day counts everyone, by member.
    ledger.debit(llm(member="Iris", turn="turn-4"), limits)
    usage = ledger.usage("user", "alice")
    assert usage.spent.tokens == 120
    assert {name: cost.tokens for name, cost in usage.members.items()} == {"Ada": 90, "Iris": 30}
    assert ledger.usage("turn", "turn-1").spent.tokens == 30
    assert ledger.names("user") == ["alice"] and ledger.names("member") == ["Ada", "Iris"]


@pytest.mark.timeout(60)
def test_holds_count_against_the_budget_until_settled(ledger):
    limits = Limits(user={"tokens": 1000})
    held, refused = [], []

    def reserve(i: int) -> None:
        try:
            ledger.reserve(f"call-{i}", llm(tokens=100), limits)
            held.append(i)
        except Refused:
            refused.append(i)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(held), len(refused)) == (10, 40)
    assert ledger.usage("user", "alice").held.tokens == 1000
    for i in held:  # each call used less than it reserved
        ledger.settle(f"call-{i}", llm(tokens=40))
    usage = ledger.usage("user", "alice")
    assert (usage.spent.tokens, usage.held.tokens) == (400, 0)
    assert not ledger.release("call-0")  # already settled
    ledger.reserve("late", llm(tokens=600), limits)
    with pytest.raises(Refused):
        ledger.reserve("later", llm(tokens=1), limits)
    assert ledger.release("late")
    assert ledger.usage("user", "alice").held.tokens == 0


def test_a_hold_nobody_settles_expires(ledger, clock):
    limits = Limits(user={"tokens": 100})
    ledger.reserve("lost", llm(tokens=100), limits)
    with pytest.raises(Refused):
        ledger.debit(llm(tokens=1), limits)
    clock.at += HOLD_TTL_S + 1
    ledger.debit(llm(tokens=1), limits)  # the sweep in this call released the lost hold first
    assert ledger.usage("user", "alice").held.tokens == 0


def test_budgets_reset_with_the_utc_day(ledger, clock):
    limits = Limits(user={"tokens": 30})
    ledger.debit(llm(), limits)
    with pytest.raises(Refused) as refused:
        ledger.debit(llm(), limits)
    first = day_of(clock.at)
    assert refused.value.day == first and resets_at(first).isoformat() == "2026-11-19T00:00:00+00:00"
    clock.at = resets_at(first).timestamp()
    ledger.debit(llm(), limits)
    assert ledger.usage("user", "alice", first).spent.tokens == 30
    assert ledger.usage("user", "alice").spent.tokens == 30
    assert [e["at"][:10] for e in ledger.entries(first)] == [first]


def test_an_operator_freezes_and_unfreezes(ledger):
    ledger.freeze("user", "alice")
    with pytest.raises(Refused) as frozen:
        ledger.debit(llm())
    assert (frozen.value.scope, frozen.value.unit) == ("user", "frozen")
    with pytest.raises(Refused):
        ledger.check("alice")
    ledger.debit(llm(user="bob"))
    ledger.freeze("user", "alice", False)
    ledger.freeze("member", "Ada")
    with pytest.raises(Refused) as member:
        ledger.debit(llm())
    assert (member.value.scope, member.value.name) == ("member", "Ada")
    ledger.debit(llm(member="Iris"))
    assert ledger.usage("member", "Ada").frozen


def test_an_operator_tops_up_today_and_sets_limits(ledger, clock):
    limits = Limits(user={"tokens": 30})
    ledger.debit(llm(), limits)
    with pytest.raises(Refused):
        ledger.check("alice", limits=limits)
    assert ledger.top_up("user", "alice", "tokens", 60) == 60
    ledger.check("alice", limits=limits)
    ledger.debit(llm(), limits)
    ledger.debit(llm(), limits)
    with pytest.raises(Refused) as refused:
        ledger.debit(llm(), limits)
    assert refused.value.limit == 90
    ledger.set_limit("user", "alice", "tokens", 200)  # over the configured 30
    ledger.debit(llm(), limits)
    ledger.set_limit("user", "alice", "tokens", -1)  # no limit at all
    ledger.debit(llm(tokens=10_000), limits)
    clock.at += 86_400  # the top-up was for that day only; the override stays
    ledger.set_limit("user", "alice", "tokens", None)
    ledger.debit(llm(), limits)
    with pytest.raises(Refused) as next_day:
        ledger.debit(llm(), limits)
    assert next_day.value.limit == 30


def test_worker_records_settle_the_apps_hold_and_are_priced_from_redis(ledger):
    prices = {"tts:*|compute_ms": 0.2, "tts:*|chars": 1.0, "tts:coqui|compute_ms": 5.0}
    ledger.publish_prices(prices)
    assert ledger.prices() == prices
    ledger.reserve("job-1", Charge(kind="tts", item="espeak", user="alice", chars=200, compute_ms=500))
    assert ledger.usage("user", "alice").held.money == pytest.approx((200 + 500 * 0.2) / 1e6)
    espeak = Charge(kind="tts", item="espeak", user="alice", member="Max", chars=42, compute_ms=18, cpu_ms=18)
    coqui = Charge(kind="tts", item="coqui", user="alice", chars=42, compute_ms=18, gpu_ms=18)
    entry = ledger.settle("job-1", espeak)
    ledger.settle("job-2", coqui)  # no hold: recorded all the same
    assert entry.cost.money == price(prices, espeak) / 1e6 == round(42 + 18 * 0.2) / 1e6  # whole micro-units
    usage = ledger.usage("user", "alice")
    assert usage.held.money == 0
    assert usage.spent.seconds == 0.036
    assert usage.spent.money == pytest.approx((price(prices, espeak) + price(prices, coqui)) / 1e6)


def test_the_exported_ledger_adds_up_to_the_counters(ledger):
    ledger.publish_prices({"llm:*|input_tokens": 1.0, "llm:*|output_tokens": 3.0})
    for user, member in [("alice", "Ada"), ("bob", "Max"), ("alice", "Max")]:
        ledger.debit(llm(user=user, member=member, turn="t-1"))
    ledger.debit(Charge(kind="tool", item="calculator", user="alice", member="Ada", note="refused: permission"))
    rows = ledger.entries(user="alice")
    assert len(rows) == 3 and set(rows[0]) == set(COLUMNS)
    assert rows[-1]["note"] == "refused: permission" and rows[-1]["tokens"] == 0
    usage = ledger.usage("user", "alice")
    assert sum(r["tokens"] for r in rows) == usage.spent.tokens == 60
    assert sum(r["money"] for r in rows) == pytest.approx(usage.spent.money) == pytest.approx(2 * 50 / 1e6)
    assert ledger.usage("turn", "t-1").spent.tokens == 90


def test_unknown_units_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown budget unit"):
        Limits(user={"dollars": 5}).stored()
