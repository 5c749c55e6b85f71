"""Every turn ends with `turn_done` (or `turn_cancelled`), whatever it meets (issue #22, break 4):
each error a turn can meet is injected into a real turn (real Redis, the app's services), and the
turn ends saying its code, a message and whether to try again."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.exceptions

from council import BudgetExceeded, ConfigError, CouncilFailed, EchoResponder, LLMUnavailable, Reply
from queues import BlobTooLarge, RateLimited, areplay
from shared_schemas import ErrorCode, EventType
from web.meter import QuotaExceeded
from web.services import Services
from web.settings import AppSettings
from web.turns import TurnRunner


class Failing(EchoResponder):
    """Says one word, then meets `error` (the way a council, a budget or Redis fails mid-answer)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def answer(self, session_id: str, turn_id: str, text: str, voice: str, **_: Any) -> AsyncIterator[Reply]:
        yield Reply(self.member, voice, "Well")
        raise self.error


async def _turn(settings: AppSettings, session_id: str, responder: Any, text: str) -> list:
    services = await Services.open(settings, make_responder=lambda _: responder)
    try:
        async with asyncio.timeout(20):
            await TurnRunner(services, session_id, responder, "mallory").run("turn-1", "en-us", text=text)
        return await areplay(services.aredis, settings.queues, session_id)
    finally:
        await services.close()


def _done(events: list) -> dict:
    ends = [e for e in events if e.job_id == "turn-1" and e.type in (EventType.TURN_DONE, EventType.TURN_CANCELLED)]
    assert len(ends) == 1, [e.type for e in events]
    assert ends[0].type is EventType.TURN_DONE
    return ends[0].payload.model_dump(mode="json")


def test_the_user_queue_limit_tripping_mid_answer_ends_the_turn(own, session_id):
    """The reproduction: a user may queue one job, the answer has three sentences and no worker takes
    them; the second sentence is refused (`RateLimited`), and the turn ends saying so."""
    settings = AppSettings(queues=own.model_copy(update={"max_queued_per_user": 1}))
    events = asyncio.run(_turn(settings, session_id, EchoResponder(), "One thing. Another thing. A third thing."))
    done = _done(events)
    assert done["status"] == "failed"
    assert done["error"]["code"] == ErrorCode.RATE_LIMITED and done["error"]["retryable"] is True
    assert "at most 1 may wait" in done["error"]["message"]


ERRORS = {
    "llm_unavailable": (LLMUnavailable("No model answers."), True),
    "council_failed": (CouncilFailed("Every member failed."), True),
    "budget_exceeded": (BudgetExceeded("Your daily budget is spent; it resets at midnight."), False),
    "council_config": (ConfigError("members.toml names no chair."), False),
    "audio_quota": (QuotaExceeded("You have stored 90 MiB of audio."), True),
    "rate_limited": (RateLimited("user", "mallory", 3, 3), True),
    "storage_full": (
        redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),
        True,
    ),
    "queue_unavailable": (redis.exceptions.ConnectionError("Connection refused."), True),
    "audio_too_large": (BlobTooLarge(70_000_000, 67_108_864), False),
    "internal": (RuntimeError("a bug"), True),
}


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_each_error_a_turn_can_meet_ends_it_with_its_code(own, session_id, code):
    error, retryable = ERRORS[code]
    events = asyncio.run(_turn(AppSettings(queues=own), session_id, Failing(error), "Tell me."))
    done = _done(events)
    assert done["status"] == "failed"
    assert done["error"]["code"] == code and done["error"]["retryable"] is retryable
    assert done["error"]["message"]
    if code == "internal":
        assert "a bug" not in done["error"]["message"]  # a trace is logged, never sent
