"""The council's test seam: a scripted chat model, and a responder on the real test Redis."""

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
import redis.asyncio
from langchain_core.language_models import BaseChatModel

from council import Council, CouncilResponder, CouncilSettings, Reply, Step
from council.members import load
from council.scripted import Scripted
from council.settings import OLLAMA_MEMBERS_FILE


@pytest.fixture
def scripted() -> type[Scripted]:
    return Scripted


@pytest.fixture
def council() -> Council:
    """The default council: Ada (analyst), Iris (creative), Angus (skeptic), Max (chair)."""
    return load(OLLAMA_MEMBERS_FILE)


@pytest.fixture
def council_settings() -> CouncilSettings:
    return CouncilSettings(member_timeout_s=2, critique_timeout_s=2, chair_timeout_s=2, router_timeout_s=1)


def answers_by_role(council: Council, **overrides: Scripted) -> dict[str, Scripted]:
    """A scripted model per member, each answering with its own name unless overridden."""
    models = {m.name: Scripted(script=[f"{m.name} thinks this through."]) for m in council.everyone}
    models[council.chair.name] = Scripted(script=["The chair decides: do it."])
    return models | overrides


@pytest.fixture
def models(council: Council) -> Callable[..., dict[str, Scripted]]:
    return lambda **overrides: answers_by_role(council, **overrides)


@pytest.fixture
def responder(redis_url: str, council: Council, council_settings: CouncilSettings):
    """`async with responder(models, **settings) as r`: a CouncilResponder on the test Redis."""

    @contextlib.asynccontextmanager
    async def make(models: dict[str, BaseChatModel], **settings: Any) -> AsyncIterator[CouncilResponder]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            yield CouncilResponder(council_settings.model_copy(update=settings), council, models, client)
        finally:
            await client.aclose()

    return make


@pytest.fixture
def turn() -> Callable[..., Any]:
    """`await turn(responder, session_id, text, **options)`: everything one turn yields, in order."""

    async def run(r: CouncilResponder, session_id: str, text: str, **options: Any) -> list[Reply | Step]:
        return [item async for item in r.answer(session_id, f"t-{time.monotonic_ns()}", text, "leon", **options)]

    return run


def kinds(items: Sequence[Reply | Step]) -> list[str]:
    return [item.type if isinstance(item, Step) else f"token:{item.member}" for item in items]


@pytest.fixture
def step_kinds() -> Callable[[Sequence[Reply | Step]], list[str]]:
    return kinds


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port
