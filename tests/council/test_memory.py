"""Memory: history fed back to the members and kept across restarts; signals that appear and fade."""

import asyncio

import redis.asyncio

from council import CouncilSettings
from council.memory import Memory
from council.signals import Signals, terms

FIRST = "Should I learn the cello or the piano first?"
SECOND = "Should I take lessons for it online, then?"


def test_the_next_turn_sees_the_last_one(responder, models, scripted, turn, session_id):
    chosen = models(Max=scripted(script=["Start with the piano."]))

    async def scenario():
        async with responder(chosen, critique=False) as r:
            await turn(r, session_id, FIRST)
            await turn(r, session_id, SECOND)

    asyncio.run(scenario())
    second_call = chosen["Ada"].calls[1]
    contents = [m.content for m in second_call]
    assert contents[1:] == [FIRST, "Start with the piano.", SECOND]
    assert [m.type for m in second_call] == ["system", "human", "ai", "human"]


def test_history_survives_a_restart(responder, models, turn, session_id):
    async def before():
        async with responder(models(), critique=False) as r:
            await turn(r, session_id, FIRST)

    later = models()

    async def after():
        async with responder(later, critique=False) as r:  # a new responder: the app restarted
            await turn(r, session_id, SECOND)

    asyncio.run(before())
    asyncio.run(after())
    contents = [m.content for m in later["Iris"].calls[0]]
    assert contents[1:] == [FIRST, "The chair decides: do it.", SECOND]


def test_history_keeps_the_newest_turns_within_the_budget(redis_url, session_id):
    async def scenario():
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            memory = Memory(client, CouncilSettings(history_turns=4))
            for i in range(6):
                await memory.remember(session_id, f"t{i}", f"question {i}" + "x" * 30, f"answer {i}" + "y" * 30, [])
            everything = await memory.history(session_id, budget_tokens=10_000)
            budgeted = await memory.history(session_id, budget_tokens=45)
            return everything, budgeted
        finally:
            await client.aclose()

    everything, budgeted = asyncio.run(scenario())
    assert [t.turn_id for t in everything] == ["t2", "t3", "t4", "t5"]  # at most history_turns kept
    assert everything[0].tokens == 20
    assert [t.turn_id for t in budgeted] == ["t4", "t5"]  # 20 tokens each: two fit in 45


def test_terms_keep_content_words_and_weigh_names():
    found = terms("Should I move to Lisbon? My partner loves Lisbon, and the rent there is lower.")
    assert found["lisbon"] == 4  # a name, twice
    assert found["partner"] == 1 and found["rent"] == 1 and found["lower"] == 1
    assert found["move"] == 1
    assert not {"should", "the", "and", "there", "my"} & set(found)
    assert terms("Lisbon is lovely")["lisbon"] == 1  # at the start of a sentence: not taken for a name


def test_signals_appear_and_decay(redis_url, session_id):
    settings = CouncilSettings(signals_turn_decay=0.5, signals_half_life_s=100, signals_floor=0.2)

    async def scenario():
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            signals = Signals(client, settings)
            t = 1_000_000.0
            await signals.observe(session_id, "We talked about Lisbon and Porto.", now=t)
            await signals.observe(session_id, "What about the rent in Lisbon?", now=t)
            fresh = await signals.top(session_id, now=t)
            later = await signals.top(session_id, now=t + 100)  # one half-life later
            for i in range(3):  # three turns about something else
                await signals.observe(session_id, "Tell me about cellos.", now=t + 100 + i)
            faded = await signals.top(session_id, now=t + 103)
            return fresh, later, faded
        finally:
            await client.aclose()

    fresh, later, faded = asyncio.run(scenario())
    scores = {s.term: s.score for s in fresh}
    assert fresh[0].term == "lisbon" and scores["lisbon"] == 3.0  # 2 * 0.5 + 2
    assert scores["porto"] == 1.0 and scores["rent"] == 1.0
    assert {s.term: s.score for s in later}["lisbon"] == 1.5
    faded_scores = {s.term: s.score for s in faded}
    assert "cellos" in faded_scores
    assert "lisbon" not in faded_scores and "porto" not in faded_scores  # fell under the floor


def test_members_see_the_recurring_topics(responder, models, turn, session_id):
    chosen = models()

    async def scenario():
        async with responder(chosen, critique=False) as r:
            await turn(r, session_id, "Should I move to Lisbon next spring?")
            await turn(r, session_id, "Should I rent in Lisbon before I buy?")

    asyncio.run(scenario())
    first_system, second_system = (chosen["Angus"].calls[i][0].content for i in (0, 1))
    assert "Topics that keep coming up" not in first_system
    assert "Topics that keep coming up in this conversation: lisbon" in second_system
