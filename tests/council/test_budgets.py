"""Budgets on turns through the council, with scripted models on the real test Redis: every model
call in the ledger with the tokens the model reported, the router's downgrade to the fast path,
clear refusals, and parallel turns that cannot overspend."""

import asyncio
import uuid
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from council import ConfigError, Council, CouncilResponder, Reply, Step
from council.budgets import parse_budget
from council.errors import BudgetExceeded
from council.prices import load as load_prices
from council.scripted import usage

DELIBERATE = "Should I move to Lisbon or stay in Berlin for the new job?"


@pytest.fixture
def fresh() -> dict[str, str]:
    """Settings for a ledger of this test's own (member counters are shared by every user)."""
    return {"key_prefix": f"t{uuid.uuid4().hex[:10]}"}


def routed(items):
    return next(i.payload.model_dump() for i in items if isinstance(i, Step) and i.type == "routed")


def expected_tokens(models) -> dict[str, tuple[int, int, int]]:
    """(input, output, calls) per member, recomputed from what each scripted model was sent."""
    out = {}
    for name, model in models.items():
        totals = [0, 0, len(model.calls)]
        for i, messages in enumerate(model.calls):
            answer = model.script[min(i, len(model.script) - 1)]
            counted = usage(messages, answer if isinstance(answer, AIMessage) else AIMessage(answer))
            totals[0] += counted["input_tokens"]
            totals[1] += counted["output_tokens"]
        if model.calls:
            out[name] = tuple(totals)
    return out


def test_every_model_call_of_a_turn_is_in_the_ledger(responder, models, turn, session_id, fresh):
    chosen = models()

    async def scenario():
        async with responder(chosen, **fresh) as r:
            items = await turn(r, session_id, DELIBERATE, user="alice")
            ledger = r.budgets.ledger
            return items, await ledger.usage("user", "alice"), await ledger.entries(user="alice")

    items, spent, entries = asyncio.run(scenario())
    assert routed(items)["route"] == "council"
    expected = expected_tokens(chosen)
    assert set(expected) == {"Ada", "Iris", "Angus", "Max"}
    calls = sum(n for _, _, n in expected.values())
    assert calls == 7  # three answers, three critiques, the chair
    assert len(entries) == calls and {e["kind"] for e in entries} == {"llm"}
    assert spent.quantities["input_tokens"] == sum(i for i, _, _ in expected.values())
    assert spent.quantities["output_tokens"] == sum(o for _, o, _ in expected.values())
    assert spent.spent.tokens == sum(i + o for i, o, _ in expected.values())
    assert {name: cost.tokens for name, cost in spent.members.items()} == {
        name: i + o for name, (i, o, _) in expected.items()
    }
    assert spent.held.tokens == 0
    turn_ids = {e["turn_id"] for e in entries}
    assert len(turn_ids) == 1 and {e["session_id"] for e in entries} == {session_id}
    assert sorted(e["note"] for e in entries if e["member"] == "Ada") == ["answer", "critique"]


def test_a_council_turn_the_budget_cannot_cover_goes_down_the_fast_path(responder, models, turn, session_id, fresh):
    chosen = models()

    async def scenario():
        async with responder(chosen, budget_daily=("5000 tokens",), **fresh) as r:
            return await turn(r, session_id, DELIBERATE, user="bob")

    items = asyncio.run(scenario())
    decision = routed(items)
    assert decision["route"] == "fast" and decision["by"] == "budget"
    assert decision["reason"].startswith("budget: your daily budget has 5,000 tokens left and this needs about ")
    assert decision["reason"].endswith("so one member answers instead of the whole council")
    assert all(not chosen[m].calls for m in ("Ada", "Iris", "Angus"))
    assert "".join(i.text for i in items if isinstance(i, Reply)) == "The chair decides: do it."


def test_a_turn_not_even_the_fast_path_fits_fails_saying_which_budget_and_when(
    responder, models, turn, session_id, fresh
):
    chosen = models()

    async def scenario():
        async with responder(chosen, budget_daily=("500 tokens",), **fresh) as r:
            await turn(r, session_id, DELIBERATE, user="carol")

    with pytest.raises(BudgetExceeded) as refused:
        asyncio.run(scenario())
    message = refused.value.message
    assert message.startswith("Your daily budget has 500 tokens left and this needs about ")
    assert "It resets at 00:00 UTC, in " in message
    assert refused.value.code == "budget_exceeded" and not refused.value.retryable
    assert all(not m.calls for m in chosen.values())


def test_a_spent_or_frozen_budget_refuses_the_turn_at_once(responder, models, turn, session_id, fresh):
    async def scenario():
        async with responder(models(), budget_daily=("100 tokens",), **fresh) as r:
            await turn(r, session_id, "Hello there", user="dave")  # too big: refused before any call
            return None

    with pytest.raises(BudgetExceeded):
        asyncio.run(scenario())

    async def spent_then_frozen():
        async with responder(models(), budget_daily=("100 tokens",), **fresh) as r:
            ledger = r.budgets.ledger
            await ledger.top_up("user", "erin", "tokens", 0)
            await ledger.set_limit("user", "erin", "tokens", 0)
            errors = []
            for user in ("erin", "frank"):
                if user == "frank":
                    await ledger.freeze("user", "frank")
                try:
                    await turn(r, session_id, "Hello there", user=user)
                except BudgetExceeded as exc:
                    errors.append(exc.message)
            return errors

    spent, frozen = asyncio.run(spent_then_frozen())
    assert spent.startswith("Your daily budget is spent: 0 tokens of 0 tokens used. It resets at 00:00 UTC")
    assert frozen == "Your daily budget is frozen by an operator, who can unfreeze it."


def test_a_member_over_its_own_budget_is_dropped_and_the_turn_goes_on(
    responder, council, models, turn, session_id, fresh, redis_url, council_settings
):
    import redis.asyncio

    poor = council.members[0].model_copy(update={"daily_budget": {"tokens": 50}})
    small = Council(members=(poor, *council.members[1:]), chair=council.chair, fast=council.fast)
    chosen = models()

    async def scenario():
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            r = CouncilResponder(council_settings.model_copy(update=fresh), small, chosen, client)
            return await turn(r, session_id, DELIBERATE, user="gina")
        finally:
            await client.aclose()

    items = asyncio.run(scenario())
    dropped = [i.payload.model_dump() for i in items if isinstance(i, Step) and i.type == "member_dropped"]
    assert [(d["member"], d["phase"]) for d in dropped] == [("Ada", "answer")]
    assert dropped[0]["reason"].startswith("Ada's daily budget has 50 tokens left and this needs about ")
    assert chosen["Ada"].calls == []
    assert "".join(i.text for i in items if isinstance(i, Reply) and i.member == "Max")


@pytest.mark.timeout(60)
def test_parallel_turns_cannot_overspend(redis_url, council, council_settings, scripted, fresh):
    """Six turns at once for one user. Each answer uses ~180 tokens, so six would spend ~1,080 of a
    1,000-token day if each only checked what was spent before it started; the reservation each
    call takes, atomically, stops the ones that no longer fit."""
    import redis.asyncio

    chair = council.chair.model_copy(update={"max_output_tokens": 100})
    small = Council(members=council.members, chair=chair, fast=chair)
    answer = " ".join(["word"] * 100)
    chosen = {m.name: scripted(script=[answer], delay=0.2) for m in small.everyone}
    settings = council_settings.model_copy(update={"budget_daily": ("1000 tokens",), **fresh})

    async def one(r: CouncilResponder, i: int) -> str:
        try:
            async for _ in r.answer(f"par-{fresh['key_prefix']}-{i}", f"turn-{i}", "Hello there", "leon", user="hank"):
                pass
        except BudgetExceeded as exc:
            return exc.message
        return "answered"

    async def scenario():
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            r = CouncilResponder(settings, small, chosen, client)
            outcomes = await asyncio.gather(*(one(r, i) for i in range(6)))
            return outcomes, await r.budgets.ledger.usage("user", "hank"), await r.budgets.ledger.entries(user="hank")
        finally:
            await client.aclose()

    outcomes, spent, entries = asyncio.run(scenario())
    answered = outcomes.count("answered")
    per_turn = {e["tokens"] for e in entries}
    assert len(per_turn) == 1 and 150 < per_turn.pop() < 250
    assert 0 < answered < 6 and len(entries) == answered
    assert spent.spent.tokens == sum(e["tokens"] for e in entries) <= 1000
    assert spent.held.tokens == 0
    refusals = [o for o in outcomes if o != "answered"]
    assert all(o.startswith("Your daily budget") and "resets at 00:00 UTC" in o for o in refusals)


def test_budgets_in_money_use_the_price_table(responder, models, turn, session_id, fresh, tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text('currency = "EUR"\n[llm."llama3.2"]\ninput_per_mtok = 1000.0\noutput_per_mtok = 4000.0\n')

    async def scenario():
        async with responder(models(), prices_file=prices, budget_daily=("3 money",), **fresh) as r:
            items = await turn(r, session_id, "Hello there", user="ivy")
            return items, await r.budgets.ledger.entries(user="ivy")

    items, entries = asyncio.run(scenario())
    [entry] = entries
    assert entry["money"] == pytest.approx((entry["input_tokens"] * 1000 + entry["output_tokens"] * 4000) / 1e6)

    async def too_dear():
        async with responder(models(), prices_file=prices, budget_daily=("0.5 money",), **fresh) as r:
            await turn(r, session_id, "Hello there", user="jack")

    with pytest.raises(BudgetExceeded, match=r"Your daily budget has 0\.5000 EUR left and this needs about "):
        asyncio.run(too_dear())


@pytest.mark.parametrize("values", [("lots tokens",), ("5 dollars",), ("5",), ("-1 tokens",), ("1 tokens", "2 tokens")])
def test_a_malformed_budget_names_its_variable(values):
    with pytest.raises(ConfigError, match='COUNCIL_BUDGET_DAILY must be "<amount> <unit>"'):
        parse_budget(values, "COUNCIL_BUDGET_DAILY")


def test_budgets_parse_from_the_environment():
    assert parse_budget(("200000 tokens", "2.5 money", "600 seconds"), "X") == {
        "tokens": 200000,
        "money": 2.5,
        "seconds": 600,
    }
    assert parse_budget((), "X") is None


def test_the_default_price_table_loads_and_a_bad_one_is_refused(tmp_path):
    from council.settings import DEFAULT_PRICES_FILE

    prices = load_prices(DEFAULT_PRICES_FILE)
    assert prices.currency == "USD"
    assert prices.per("llm", "gpt-4o-mini", "output_tokens") == 0.6  # micro-units a token
    assert prices.per("llm", "llama3.2", "input_tokens") == 0.0
    assert prices.per("tts", "coqui", "compute_ms") == pytest.approx(2.0 / 3.6)
    bad = tmp_path / "prices.toml"
    bad.write_text('[llm."x"]\ninput_per_token = 1\n')
    with pytest.raises(ConfigError, match="input_per_token: unknown"):
        load_prices(bad)


def test_budget_and_tool_settings_come_from_the_environment(council, models, redis_url):
    import redis.asyncio

    from council import CouncilSettings

    settings = CouncilSettings.from_env(
        {
            "COUNCIL_BUDGET_DAILY": "200000 tokens, 2 money",
            "COUNCIL_BUDGET_TURN": "20000 tokens",
            "COUNCIL_PRICES_FILE": "/etc/council/prices.toml",
            "COUNCIL_OPERATORS": "root",
            "COUNCIL_TOOLS_HTTP": "on",
            "COUNCIL_TOOLS_HTTP_ALLOW": "example.com, api.internal",
        }
    )
    assert settings.budget_daily == ("200000 tokens", "2 money") and settings.budget_turn == ("20000 tokens",)
    assert str(settings.prices_file) == "/etc/council/prices.toml" and settings.operators == ("root",)
    assert settings.tools_http and settings.tools_http_allow == ("example.com", "api.internal")
    client = redis.asyncio.Redis.from_url(redis_url)
    with pytest.raises(ConfigError, match="COUNCIL_BUDGET_TURN must be"):
        CouncilResponder(CouncilSettings(budget_turn=("a few tokens",)), council, models(), client)
    with pytest.raises(ConfigError, match="price file /nowhere/prices.toml does not exist"):
        CouncilResponder(CouncilSettings(prices_file=Path("/nowhere/prices.toml")), council, models(), client)


def test_failed_and_interrupted_calls_give_their_holds_back(responder, models, scripted, session_id, fresh):
    slow = scripted(script=["one two three four five six"], pace=0.2)
    broken = scripted(script=[RuntimeError("no server")])

    async def scenario():
        async with responder(models(Ada=slow, Iris=broken), critique=False, **fresh) as r:
            seen: list = []

            async def consume():
                async for item in r.answer(session_id, "t-cut", DELIBERATE, "leon", user="kim"):
                    seen.append(item)

            task = asyncio.create_task(consume())
            while not any(isinstance(i, Reply) and i.member == "Ada" for i in seen):
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            ledger = r.budgets.ledger
            for _ in range(100):  # the shielded settles finish on their own
                if (await ledger.usage("user", "kim")).held.tokens == 0:
                    break
                await asyncio.sleep(0.02)
            return await ledger.usage("user", "kim"), await ledger.entries(user="kim")

    spent, entries = asyncio.run(scenario())
    assert spent.held.tokens == 0
    by_member = {e["member"]: e for e in entries}
    assert "Iris" not in by_member  # it failed before a word: nothing to pay
    ada = by_member["Ada"]
    assert ada["note"] == "answer, estimated, failed" and 1 <= ada["output_tokens"] <= 2
    assert ada["input_tokens"] > 0
