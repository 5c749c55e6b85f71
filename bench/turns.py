"""Turn latencies: time to first audio (ttfa) and the voice response time, with a scripted LLM
that answers at once, so that they measure our pipeline, not a model."""

import asyncio
import statistics
import time
import uuid

from council import OLLAMA_MEMBERS_FILE, CouncilResponder, CouncilSettings, load_members
from council.scripted import Scripted
from queues import QueueSettings
from shared_schemas import EventType, new_turn_id
from web.services import Services
from web.settings import AppSettings
from web.turns import TurnRunner

QUESTION = "What is the capital of France?"  # a simple request: the router sends it to the fast path
ANSWER = "Paris is the capital of France. It has been for centuries, with a short break or two."


def responder_factory(tts_engines: tuple[str, ...]):
    council = load_members(OLLAMA_MEMBERS_FILE)
    settings = CouncilSettings(tts_engines=tts_engines, critique=False)
    models = {m.name: Scripted(script=[ANSWER]) for m in council.everyone}
    return lambda aredis: CouncilResponder(settings, council, models, aredis)


async def one_turn(services: Services, text: str | None = None, audio: bytes | None = None) -> tuple[float, float]:
    """(seconds from the first whole sentence to its audio, seconds from the input to the first audio)."""
    session = f"bench-turn-{uuid.uuid4().hex[:10]}"
    runner = TurnRunner(services, session, services.responder)
    turn_id = new_turn_id()
    async with services.hub.subscribe(session) as sub:
        received = time.perf_counter()
        task = asyncio.create_task(runner.run(turn_id, "max", text=text, audio=audio, audio_format="wav"))
        while True:
            event = await sub.get(timeout=60)
            if event.type is EventType.AUDIO:
                first_audio = time.perf_counter()
                break
            if event.type in (EventType.TURN_DONE, EventType.FAILED):
                raise RuntimeError(f"turn ended without audio: {event.payload}")
        await task
    return first_audio - runner.first_sentence_at[turn_id], first_audio - received


async def bench_turns(queues: QueueSettings, tts_engines: tuple[str, ...], turns: int, question_wav: bytes) -> dict:
    services = await Services.open(AppSettings(queues=queues), responder_factory(tts_engines))
    try:
        await one_turn(services, text=QUESTION)  # warm up: first Piper call, first Whisper call
        await one_turn(services, audio=question_wav)
        ttfa = [(await one_turn(services, text=QUESTION))[0] for _ in range(turns)]
        voice = [(await one_turn(services, audio=question_wav))[1] for _ in range(turns)]
    finally:
        await services.close()
    return {"ttfa_ms": statistics.median(ttfa) * 1000, "voice_turn_ms": statistics.median(voice) * 1000}
