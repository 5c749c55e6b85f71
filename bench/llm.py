"""The council's built-in model, measured where the person is: SmolLM2-135M-Instruct on a real LLM
worker (`WORKER_QUEUES=llm`, started here) beside the benchmark's voice worker, the default members
file (every member on the worker), espeak voices first.

- generation alone: a `GenerationJob` enqueued to its first `token` event (time to first token, as
  the app sees it) and the worker's own tokens per second (its `generated` event);
- spoken turns, hands-free, as people use it: a client streams each question (Piper's voice) over
  the chat WebSocket in real time, 20 ms PCM frames as the page sends them (bench/stream.py's
  `Speaker`), to the app running the default council, and times the turn from the last voiced frame
  it sent to the first answer audio it received (`llm_fast_first_sound_ms`, `_p90_ms`): short
  factual questions (the router's fast path: one member answers) and a question for the whole
  council (`llm_council_first_sound_ms`, `_p90_ms`: members in parallel, batched by the worker,
  critique, chair; the first member to write is heard, `hear_first`); the fast path with 2 and 4
  people speaking at once (`llm_fast_first_sound_2_ms`, `_4_ms`). Each turn is split into its
  stages, all from the end of speech and as the client sees them: the turn decided
  (`turn_started`), its transcript, the router's decision (`routed`), the answer's first token, its
  first piece to speak written (cut as the app cuts it: a long first sentence's first clause, see
  web/turns.py) and its first whole sentence written (as it was cut before: the same run shows what
  the first clause saves), the turn confirmed (a tentative turn's sound is held until
  `turn_confirmed`: that wait is the person's too), and the first audio;
- push-to-talk: the same short question recorded whole (flite) and handed to the turn runner as
  the page uploads it (`llm_fast_first_sound_recorded_ms`, `_p90_ms`).

    .venv-app/bin/python -m bench.llm --turns 10      # alone; `make bench` runs it too
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from council import CouncilSettings
from queues import EventHub, JobClient, QueueSettings
from shared_schemas import ChatMessage, EventType, GenerationJob, new_turn_id
from web.services import Services
from web.settings import AppSettings
from web.turns import TurnRunner

from .procs import ROOT, percentile, private_redis, process
from .stream import PAUSE_S, QUESTIONS, Speaker, Turn, serve
from .stream import speak as stream_speak

FAST = "what is the capital of france"  # a short factual question: the fast path
COUNCIL_SPOKEN = "Should I rent or buy a flat this year?"  # a decision: the whole council
STAGES = ("transcript", "first_token", "first_sentence", "first_audio")
TURN_LIMIT_S = 300  # a council turn on a busy CPU, its answer played to its end


def speak(text: str, path: Path) -> bytes:
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
    return path.read_bytes()


async def bench_generation(queues: QueueSettings, runs: int) -> dict[str, float]:
    """Median time from enqueue to the first token event, and the worker's tokens per second."""
    aredis = queues.connect_async()
    jobs, hub = JobClient(queues, aconnection=aredis), EventHub(queues, aredis)
    await hub.start()
    first, rates = [], []
    try:
        for i in range(runs + 1):
            job_id = f"bench-gen-{uuid.uuid4().hex[:8]}"
            job = GenerationJob(
                session_id="bench-llm",
                job_id=job_id,
                messages=[ChatMessage(role="user", content="Name three colours of the rainbow.")],
                max_tokens=48,
                reply_to=f"llm-{job_id}",
            )
            async with hub.subscribe(f"llm-{job_id}", after="0") as sub:
                started = time.perf_counter()
                await jobs.aenqueue(job)
                seen = None
                while (event := await sub.get(timeout=120)).type is EventType.TOKEN:
                    seen = seen or time.perf_counter()
                assert event.type is EventType.GENERATED and seen is not None, event
                if i:  # the first one warms the model up
                    first.append((seen - started) * 1000)
                    rates.append(float(event.payload.tokens_per_s))
    finally:
        await hub.close()
        await aredis.aclose()
        jobs.connection.close()
    return {"llm_first_token_ms": statistics.median(first), "llm_tokens_per_s": statistics.median(rates)}


async def one_turn(services: Services, audio: bytes) -> dict[str, float]:
    """Seconds from handing over the recording to each stage of its answer."""
    session = f"bench-llm-{uuid.uuid4().hex[:10]}"
    runner = TurnRunner(services, session, services.responder)
    turn_id = new_turn_id()
    at: dict[str, float] = {}
    async with services.hub.subscribe(session) as sub:
        received = time.perf_counter()
        task = asyncio.create_task(runner.run(turn_id, "max", audio=audio, audio_format="wav"))
        while "first_audio" not in at:
            event = await sub.get(timeout=180)
            now = time.perf_counter()
            if event.type is EventType.TRANSCRIPT:
                at.setdefault("transcript", now)
            elif event.type is EventType.TOKEN:
                at.setdefault("first_token", now)
            elif event.type is EventType.AUDIO:
                at["first_audio"] = now
            elif event.type is EventType.TURN_DONE:
                raise RuntimeError(f"the turn ended without audio: {event.payload}")
        at["first_sentence"] = runner.first_sentence_at[turn_id]
        await task
    took = {stage: (at[stage] - received) * 1000 for stage in STAGES}
    print("  turn:", {stage: round(ms) for stage, ms in took.items()}, flush=True)
    return took


def stages(turns: list[dict[str, float]]) -> dict[str, float]:
    return {stage: statistics.median(t[stage] for t in turns) for stage in STAGES}


# Stages of a streamed turn, in ms from the last voiced frame sent (bench/stream.py's `Turn`).
STREAMED = (
    "decided",
    "transcript",
    "routed",
    "first_token",
    "first_piece",
    "first_sentence",
    "confirmed",
    "first_audio",
)


def streamed(turn: Turn) -> dict[str, float]:
    """A streamed turn's stages, ms from its end of speech; `confirmed` is the turn decided when it
    was not held; `first_sentence` is left out when the answer ended before a whole sentence."""
    if turn.decided is None or turn.transcript is None or turn.first_audio is None:
        raise RuntimeError(f"a streamed turn missed a part: {turn}")
    took = {}
    for stage in STREAMED:
        at = getattr(turn, stage)
        if stage == "confirmed" and at is None and not turn.confirm_ms:
            at = turn.decided
        if at is not None:
            took[stage] = (at - turn.speech_end) * 1000
    took["confirm_ms"] = float(turn.confirm_ms)
    print("  streamed turn:", {k: round(v) for k, v in took.items()}, repr(turn.text), flush=True)
    return took


def medians(turns: list[dict[str, float]]) -> dict[str, float]:
    keys = (*STREAMED, "confirm_ms")
    return {k: statistics.median(t[k] for t in turns if k in t) for k in keys if any(k in t for t in turns)}


async def speakers(url: str, questions: list[bytes], people: int, each: int) -> list[dict[str, float]]:
    """`people` clients at once, each asking `each` questions in turn, hands-free."""
    clients = [Speaker(url, turn_limit_s=TURN_LIMIT_S) for _ in range(people)]
    runs = [c.run([questions[(i + k) % len(questions)] for i in range(each)], PAUSE_S) for k, c in enumerate(clients)]
    return [streamed(t) for got in await asyncio.gather(*runs) for t in got]


async def bench_streamed(
    queues: QueueSettings, worker_python: str, turns: int, folder: Path, council_turns: int | None = None
) -> dict:
    """Hands-free turns over the chat WebSocket, the app running the default council."""
    fast = [stream_speak(q, worker_python, folder) for q in QUESTIONS]
    council = [stream_speak(COUNCIL_SPOKEN, worker_python, folder)]
    patient = {f"{kind}_timeout_s": 900 for kind in ("member", "critique", "chair")}  # a busy machine: slow
    app = AppSettings(queues=queues, council=CouncilSettings(**patient), max_streams_per_user=0)
    url, server, thread = serve(queues, app, scripted=False)
    try:
        await speakers(url, fast, 1, 1)  # warm up
        solo = await speakers(url, fast, 1, turns)
        whole = await speakers(url, council, 1, turns if council_turns is None else council_turns)
        together = {n: await speakers(url, fast, n, max(2, turns // n)) for n in (2, 4)}
    finally:
        server.should_exit = True
        thread.join(10)
    first_fast = [t["first_audio"] for t in solo]
    first_council = [t["first_audio"] for t in whole]
    return {
        "llm_fast_first_sound_ms": statistics.median(first_fast),
        "llm_fast_first_sound_p90_ms": percentile(first_fast, 90),
        "llm_council_first_sound_ms": statistics.median(first_council),
        "llm_council_first_sound_p90_ms": percentile(first_council, 90),
        "llm_fast_first_sound_2_ms": statistics.median(t["first_audio"] for t in together[2]),
        "llm_fast_first_sound_4_ms": statistics.median(t["first_audio"] for t in together[4]),
        "streamed_stages": {
            "fast": medians(solo),
            "council": medians(whole),
            "fast_2": medians(together[2]),
            "fast_4": medians(together[4]),
        },
    }


async def bench_recorded(queues: QueueSettings, turns: int, folder: Path) -> dict:
    """Push-to-talk: the short question recorded whole, handed to the turn runner as uploaded."""
    fast = speak(FAST, folder / "fast.wav")
    patient = {f"{kind}_timeout_s": 900 for kind in ("member", "critique", "chair")}
    services = await Services.open(AppSettings(queues=queues, council=CouncilSettings(**patient)))
    try:
        await one_turn(services, fast)  # warm up: the first Whisper call, the first espeak voice
        solo = [await one_turn(services, fast) for _ in range(turns)]
    finally:
        await services.close()
    first = [t["first_audio"] for t in solo]
    return {
        "llm_fast_first_sound_recorded_ms": statistics.median(first),
        "llm_fast_first_sound_recorded_p90_ms": percentile(first, 90),
        "stages": {"recorded": stages(solo)},
    }


async def bench_llm(
    queues: QueueSettings, worker_python: str, turns: int, env: dict[str, str], council_turns: int | None = None
) -> dict:
    """An LLM worker of its own for the block; the voice worker is the caller's."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-llm-worker.log"
    worker = [worker_python, "-m", "voice_worker", "--log-level", "WARNING"]
    with process(worker, {**env, "WORKER_QUEUES": queues.llm_queue}, ready="worker ready", log=log, wait_s=300):
        generation = await bench_generation(queues, runs=5)
        with tempfile.TemporaryDirectory(prefix="council-bench-llm-") as folder:
            hands_free = await bench_streamed(queues, worker_python, turns, Path(folder), council_turns)
            recorded = await bench_recorded(queues, turns, Path(folder))
    return generation | hands_free | recorded | {"turns": turns}


def report(result: dict) -> None:
    print(
        f"\nthe built-in model (SmolLM2-135M, one LLM worker, CPU): first token {result['llm_first_token_ms']:.0f} ms "
        f"after enqueue, {result['llm_tokens_per_s']:.1f} tokens/s"
    )
    print(f"  hands-free (streamed) end of speech -> first answer sound, {result['turns']} turns each:")
    for route, key, name in (
        ("fast path", "llm_fast_first_sound", "fast"),
        ("full council", "llm_council_first_sound", "council"),
    ):
        p50, p90 = result[key + "_ms"], result[key + "_p90_ms"]
        print(f"    {route:13} p50 {p50:.0f} ms, p90 {p90:.0f} ms; {_where(result, name)}")
    for people in (2, 4):
        print(
            f"    fast path, {people} people at once: p50 {result[f'llm_fast_first_sound_{people}_ms']:.0f} ms; "
            f"{_where(result, f'fast_{people}')}"
        )
    s = result["stages"]["recorded"]
    p50, p90 = result["llm_fast_first_sound_recorded_ms"], result["llm_fast_first_sound_recorded_p90_ms"]
    print(
        f"  push-to-talk (the question recorded whole) fast path: p50 {p50:.0f} ms, p90 {p90:.0f} ms; transcript "
        f"{s['transcript']:.0f}, first token {s['first_token']:.0f}, first piece sent to be spoken "
        f"{s['first_sentence']:.0f}, its audio {s['first_audio']:.0f} ms"
    )


def _where(result: dict, name: str) -> str:
    s = result["streamed_stages"][name]
    return "where the time goes (p50 from the end of speech): " + ", ".join(
        f"{stage.replace('_', ' ')} {s[stage]:.0f}" for stage in (*STREAMED, "confirm_ms") if stage in s
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--council-turns", type=int, default=None, help="default: --turns")
    parser.add_argument("--worker-python", default=str(ROOT / ".venv-worker/bin/python"))
    args = parser.parse_args()
    with private_redis() as url:
        env = {**os.environ, "COUNCIL_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
        queues = QueueSettings.from_env(env)
        log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-llm-voice-worker.log"
        voice = [args.worker_python, "-m", "voice_worker", "--log-level", "WARNING"]
        with process(voice, env, ready="worker ready", log=log):
            result = await bench_llm(queues, args.worker_python, args.turns, env, args.council_turns)
    report(result)
    print(json.dumps({k: round(v, 1) for k, v in result.items() if isinstance(v, float)}))


if __name__ == "__main__":
    asyncio.run(main())
