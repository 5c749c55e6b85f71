"""A turn through the council graph, with scripted models on the real test Redis."""

import asyncio
import time
from typing import Any

import pytest

from council import CouncilFailed, Reply, Step
from council.scripted import Scripted

DELIBERATE = "Should I move to Lisbon or stay in Berlin for the new job?"


def steps(items, type_):
    return [i for i in items if isinstance(i, Step) and i.type == type_]


def text_of(items, member):
    return "".join(i.text for i in items if isinstance(i, Reply) and i.member == member)


def test_members_answer_in_parallel(responder, models, scripted, turn, session_id):
    slow = {name: scripted(script=[f"{name} answers."], delay=0.5) for name in ("Ada", "Iris", "Angus")}

    async def scenario():
        async with responder(models(**slow), critique=False) as r:
            started = time.perf_counter()
            items = await turn(r, session_id, DELIBERATE)
            return items, time.perf_counter() - started

    items, elapsed = asyncio.run(scenario())
    assert elapsed < 1.0, f"three members of 0.5 s each took {elapsed:.2f} s: not in parallel"
    assert {s.payload.member for s in steps(items, "member_done")} == {"Ada", "Iris", "Angus", "Max"}
    assert text_of(items, "Max") == "The chair decides: do it."


def test_tokens_stream_as_they_are_written(responder, models, scripted, session_id):
    slow = scripted(script=["one two three four five six"], pace=0.1)

    async def scenario():
        async with responder(models(Ada=slow), critique=False) as r:
            started = time.perf_counter()
            seen = []
            async for item in r.answer(session_id, "t1", DELIBERATE, "leon"):
                if isinstance(item, Reply) and item.member == "Ada":
                    seen.append(time.perf_counter() - started)
            return seen

    seen = asyncio.run(scenario())
    assert len(seen) == 6
    assert seen[0] < 0.3 and seen[-1] > 0.55, seen


def test_stream_order(responder, models, turn, session_id, step_kinds):
    async def scenario():
        async with responder(models()) as r:
            return await turn(r, session_id, DELIBERATE)

    items = asyncio.run(scenario())
    kinds = step_kinds(items)
    assert kinds[0] == "routed"
    assert items[0].payload.model_dump() == {
        "route": "council",
        "reason": "asks for a decision, trade-off, plan or comparison",
        "by": "rules",
    }
    members = ("Ada", "Iris", "Angus")
    first_token = {m: kinds.index(f"token:{m}") for m in members}
    started = {s.payload.member: items.index(s) for s in steps(items, "member_started")}
    done = {s.payload.member: items.index(s) for s in steps(items, "member_done")}
    critiques = [items.index(s) for s in steps(items, "critique")]
    chair_tokens = [i for i, k in enumerate(kinds) if k == "token:Max"]
    for m in members:
        assert started[m] < first_token[m] < done[m] < min(critiques)
    assert len(critiques) == 3
    assert max(critiques) < started["Max"] < chair_tokens[0] and chair_tokens[-1] < done["Max"]
    assert kinds[-1] == "member_done"
    # Members' tokens interleave: all three start before any finishes.
    assert max(started[m] for m in members) < min(done[m] for m in members)


def test_chair_speaks_in_its_voice_members_stay_silent(responder, models, turn, session_id):
    async def scenario():
        async with responder(models(), hear_first=False) as r:
            return await turn(r, session_id, DELIBERATE)

    replies = [i for i in asyncio.run(scenario()) if isinstance(i, Reply)]
    chair = [r for r in replies if r.member == "Max"]
    assert chair and all(r.speak and r.voice == "max" for r in chair)
    members = [r for r in replies if r.member != "Max"]
    assert members and not any(r.speak for r in members)
    assert {r.member: r.voice for r in members} == {"Ada": "ada", "Iris": "iris", "Angus": "angus"}


def test_the_first_member_to_write_is_heard_while_the_others_and_the_chair_work(
    responder, models, scripted, turn, session_id
):
    """`hear_first` (the default): one member's answer is spoken, the first to write, whole; the
    others stay silent; the chair speaks after. A slow member is not the one heard."""
    slow = scripted(script=["Ada is slow to start."], pace=0.3)

    async def scenario():
        async with responder(models(Ada=slow)) as r:
            return await turn(r, session_id, DELIBERATE)

    replies = [i for i in asyncio.run(scenario()) if isinstance(i, Reply)]
    heard = {r.member for r in replies if r.speak}
    (first,) = heard - {"Max"}
    assert first in ("Iris", "Angus") and "Max" in heard
    assert all(r.speak for r in replies if r.member == first)
    assert not any(r.speak for r in replies if r.member not in (first, "Max"))
    assert max(i for i, r in enumerate(replies) if r.member == first) < min(
        i for i, r in enumerate(replies) if r.member == "Max"
    )


def test_members_speak_when_asked_to(responder, models, turn, session_id):
    async def scenario():
        async with responder(models(), tts_engines=("piper", "espeak")) as r:
            return await turn(r, session_id, DELIBERATE, hear_members=True)

    replies = [i for i in asyncio.run(scenario()) if isinstance(i, Reply)]
    assert all(r.speak for r in replies)
    # With Piper first, the chair speaks in Piper's voice; the others have only espeak voices.
    assert {r.voice for r in replies if r.member == "Max"} == {"joe"}
    assert {r.voice for r in replies if r.member == "Ada"} == {"ada"}


def test_failing_and_slow_members_are_dropped(responder, models, scripted, turn, session_id):
    broken = scripted(script=[RuntimeError("model crashed")])
    stuck = scripted(script=["too late"], delay=5)

    async def scenario():
        async with responder(models(Iris=broken, Angus=stuck), member_timeout_s=0.3) as r:
            started = time.perf_counter()
            return await turn(r, session_id, DELIBERATE), time.perf_counter() - started

    items, elapsed = asyncio.run(scenario())
    dropped = {s.payload.member: s.payload.model_dump() for s in steps(items, "member_dropped")}
    assert dropped["Iris"]["reason"] == "RuntimeError: model crashed"
    assert dropped["Angus"]["reason"] == "timed out after 0.3 s"
    assert {d["phase"] for d in dropped.values()} == {"answer"}
    assert elapsed < 1.5
    assert steps(items, "critique") == []  # one answer left: nothing to critique
    assert text_of(items, "Max") == "The chair decides: do it."
    assert isinstance(items[-1], Step) and items[-1].payload.member == "Max"


def test_the_turn_fails_clearly_when_every_member_fails(responder, models, scripted, turn, session_id):
    broken = {m: scripted(script=[RuntimeError(f"{m} is broken")]) for m in ("Ada", "Iris", "Angus")}

    async def scenario():
        async with responder(models(**broken)) as r:
            await turn(r, session_id, DELIBERATE)

    with pytest.raises(CouncilFailed, match="No member of the council could answer") as failed:
        asyncio.run(scenario())
    assert "Ada: RuntimeError: Ada is broken" in str(failed.value)


def test_a_failing_chair_fails_the_turn(responder, models, scripted, turn, session_id):
    async def scenario():
        async with responder(models(Max=scripted(script=[ValueError("bad output")]))) as r:
            await turn(r, session_id, DELIBERATE)

    with pytest.raises(CouncilFailed, match="Max could not answer"):
        asyncio.run(scenario())


def test_critiques_see_the_others_anonymized(responder, models, scripted, turn, session_id):
    chosen = models(Ada=scripted(script=["Ada thinks this through.", "B is best."], delay=0.2))  # Ada last

    async def scenario():
        async with responder(chosen) as r:
            return await turn(r, session_id, DELIBERATE)

    items = asyncio.run(scenario())
    assert sorted(s.payload.member for s in steps(items, "critique")) == ["Ada", "Angus", "Iris"]
    ada_critique = chosen["Ada"].calls[1][-1].content
    assert "Answer B:\nIris thinks this through." in ada_critique
    assert "Answer C:\nAngus thinks this through." in ada_critique
    assert "Ada thinks" not in ada_critique and "Iris" not in ada_critique.replace("Iris thinks", "")
    chair_prompt = chosen["Max"].calls[0][-1].content
    assert "Answer A (Ada, analyst):\nAda thinks" in chair_prompt
    assert "Answer C (Angus, skeptic):\nAngus thinks" in chair_prompt
    assert "Their critiques of each other (same letters):\n\nAda: B is best." in chair_prompt


class Queued(Scripted):
    """A scripted model that writes each call's answer only once `after` has written its own for
    the same call (answer, then critique): the order members finish in is set here, not by timing.
    `log` (shared) records (member, call) as each finishes writing."""

    member: str
    after: str | None = None
    log: Any = None

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs):
        call = len(self.calls) + 1
        while self.after is not None and (self.after, call) not in self.log:
            await asyncio.sleep(0.005)
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk
        self.log.append((self.member, call))


def test_members_that_finish_out_of_order_keep_their_council_letters(responder, models, turn, session_id):
    """Started Ada, Iris, Angus; finished Angus, Iris, Ada (answers and critiques alike). The
    letters still follow the council's order (`Deliberation._in_order`): the chair reads A (Ada),
    B (Iris), C (Angus) and the critiques in that order, and every critique names the others with
    the chair's letters."""
    log: list[tuple[str, int]] = []
    chosen = models(
        Ada=Queued(member="Ada", after="Iris", log=log, script=["Ada thinks this through.", "Ada: C is thin."]),
        Iris=Queued(member="Iris", after="Angus", log=log, script=["Iris thinks this through.", "Iris: A is sound."]),
        Angus=Queued(member="Angus", log=log, script=["Angus thinks this through.", "Angus: B dreams."]),
    )

    async def scenario():
        async with responder(chosen) as r:
            return await turn(r, session_id, DELIBERATE)

    items = asyncio.run(scenario())
    answering = [s.payload.member for s in steps(items, "member_started") if s.payload.phase == "answer"]
    assert answering == ["Ada", "Iris", "Angus"]
    assert log == [("Angus", 1), ("Iris", 1), ("Ada", 1), ("Angus", 2), ("Iris", 2), ("Ada", 2)]

    chair_prompt = chosen["Max"].calls[0][-1].content
    council_order = [
        "Answer A (Ada, analyst):\nAda thinks",
        "Answer B (Iris, creative):\nIris thinks",
        "Answer C (Angus, skeptic):\nAngus thinks",
        "Ada: Ada: C is thin.",
        "Iris: Iris: A is sound.",
        "Angus: Angus: B dreams.",
    ]
    at = [chair_prompt.find(part) for part in council_order]
    assert -1 not in at and at == sorted(at), chair_prompt
    letters = {"Ada": "Answer A", "Iris": "Answer B", "Angus": "Answer C"}
    for member in letters:
        critique = chosen[member].calls[1][-1].content
        shown = [f"{letters[other]}:\n{other} thinks" for other in letters if other != member]
        at = [critique.find(part) for part in shown]
        assert -1 not in at and at == sorted(at), critique
        assert f"{member} thinks" not in critique


def test_critique_round_can_be_turned_off(responder, models, turn, session_id):
    chosen = models()

    async def scenario():
        async with responder(chosen) as r:
            return await turn(r, session_id, DELIBERATE, critique=False)

    items = asyncio.run(scenario())
    assert steps(items, "critique") == []
    assert len(chosen["Ada"].calls) == 1


def test_a_simple_request_gets_one_fast_spoken_answer(responder, models, scripted, turn, session_id, step_kinds):
    chosen = models(Max=scripted(script=["Hello! How can the council help?"]))

    async def scenario():
        async with responder(chosen) as r:
            return await turn(r, session_id, "Hello there")

    items = asyncio.run(scenario())
    assert items[0].payload.model_dump() == {"route": "fast", "reason": "greeting", "by": "rules"}
    assert set(step_kinds(items)) == {"routed", "member_started", "token:Max", "member_done"}
    assert all(i.speak and i.voice == "max" for i in items if isinstance(i, Reply))
    assert all(not chosen[m].calls for m in ("Ada", "Iris", "Angus"))


def test_an_interrupted_turn_stops_at_once_and_is_not_remembered(responder, models, scripted, session_id):
    chosen = models(Ada=scripted(script=["one two three four five"], pace=0.2))

    async def scenario():
        async with responder(chosen, critique=False) as r:
            seen: list = []

            async def consume():
                async for item in r.answer(session_id, "t1", DELIBERATE, "leon"):
                    seen.append(item)

            task = asyncio.create_task(consume())
            while not any(isinstance(i, Reply) and i.member == "Ada" for i in seen):
                await asyncio.sleep(0.01)
            started = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.perf_counter() - started, await r.memory.history(session_id)

    stopped_in, history = asyncio.run(scenario())
    print(f"\ncancelled turn stopped in {stopped_in * 1000:.1f} ms")
    assert stopped_in < 2.0  # at once in practice; generous for a busy machine
    assert history == []
    assert chosen["Max"].calls == []
