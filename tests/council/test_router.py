"""The router: explainable rules each way, and the chair's model when no rule decides."""

import asyncio

import pytest

from council.router import Decision, by_rules, decide


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Hello!", "greeting"),
        ("good morning council", "greeting"),
        ("Thanks, that helps.", "thanks or acknowledgement"),
        ("Repeat that please", "command about the conversation"),
        ("Can you say that again?", "command about the conversation"),
        ("What is the capital of Portugal?", "short factual question"),
        ("How many legs does a spider have?", "short factual question"),
        ("What time does the library open on Sundays?", "short factual question"),
        ("Which planet is the largest?", "short factual question"),
        ("Sounds good", "short remark"),
    ],
)
def test_simple_requests_go_fast(text, reason):
    assert by_rules(text) == Decision("fast", reason, "rules")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Should I take the job in Lisbon?", "asks for a decision, trade-off, plan or comparison"),
        ("Hi! Should we rewrite the service in Rust?", "asks for a decision, trade-off, plan or comparison"),
        ("Compare renting and buying a flat", "asks for a decision, trade-off, plan or comparison"),
        ("What are the pros and cons of remote work?", "asks for a decision, trade-off, plan or comparison"),
        ("Help me plan a launch for next month", "asks for a decision, trade-off, plan or comparison"),
        ("Is Postgres or MySQL better for us? Why? And at what scale?", "several questions at once"),
        (" ".join(["word"] * 41), "long question (more than 40 words)"),
    ],
)
def test_deliberation_goes_to_the_council(text, reason):
    assert by_rules(text) == Decision("council", reason, "rules")


def test_a_recurring_topic_sends_a_follow_up_to_the_council():
    text = "And the cost of living in Lisbon, then?"
    assert by_rules(text) is None
    assert by_rules(text, topics=["lisbon"]) == Decision("council", "follows up on a recurring topic", "rules")


UNDECIDED = "I keep thinking about my garden and the neighbours these days"


def test_rules_leave_some_requests_undecided():
    assert by_rules(UNDECIDED) is None


@pytest.mark.parametrize(
    ("answer", "route", "by"),
    [("FAST", "fast", "llm"), ("Council.", "council", "llm"), ("fast", "fast", "llm"), ("maybe?", "council", "llm")],
)
def test_the_chair_model_decides_when_no_rule_does(scripted, answer, route, by):
    model = scripted(script=[answer])
    decision = asyncio.run(decide(UNDECIDED, model))
    assert (decision.route, decision.by) == (route, by)
    assert "router model answered" in decision.reason
    system, human = model.calls[0]
    assert "one word" in system.content and human.content == UNDECIDED


def test_only_the_router_models_first_word_is_read(scripted):
    # A small model that answers the question instead of routing it: the turn need not wait for
    # its whole answer, and a one-word answer with more after it still counts.
    seen: list = []
    chatty = scripted(script=["The capital of France is Paris, a city of two million people."])
    decision = asyncio.run(decide(UNDECIDED, chatty, on_chunk=seen.append))
    assert decision == Decision("council", "the router model answered 'The', not FAST or COUNCIL", "llm")
    assert "".join(c.text for c in seen).strip() == "The"
    decision = asyncio.run(decide(UNDECIDED, scripted(script=["FAST, a simple question."])))
    assert (decision.route, decision.by) == ("fast", "llm")


def test_no_model_call_when_a_rule_decides(scripted):
    model = scripted(script=["COUNCIL"])
    assert asyncio.run(decide("Hello", model)).route == "fast"
    assert model.calls == []


def test_a_slow_router_model_sends_the_turn_to_the_council(scripted):
    decision = asyncio.run(decide(UNDECIDED, scripted(script=["FAST"], delay=2), timeout_s=0.1))
    assert decision == Decision("council", "no rule matched and the router model took over 0.1 s", "rules")


def test_the_routed_step_carries_the_llm_decision(responder, models, scripted, turn, session_id):
    chair = scripted(script=["FAST", "Gardens and neighbours: talk to them."])

    async def scenario():
        async with responder(models(Max=chair)) as r:
            return await turn(r, session_id, UNDECIDED)

    items = asyncio.run(scenario())
    assert items[0].type == "routed"
    assert items[0].payload.model_dump() == {"route": "fast", "reason": "the router model answered FAST", "by": "llm"}
    assert len(chair.calls) == 2
