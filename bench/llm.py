"""The council's built-in model, measured where the person is: SmolLM2-135M-Instruct on a real LLM
worker (`WORKER_QUEUES=llm`, started here) beside the benchmark's voice worker, the default members
file (every member on the worker), espeak voices first.

- generation alone: a `GenerationJob` enqueued to its first `token` event (time to first token, as
  the app sees it) and the worker's own tokens per second (its `generated` event);
- spoken turns: a recorded question handed to the turn runner whole (the end of speech, as the
  page's push-to-talk sends it) to the first answer audio: a short factual question (the router's
  fast path: one member answers) and a question for the whole council (members in parallel,
  batched by the worker, critique, chair; the first member to write is heard, `hear_first`); each
  split into its stages (transcript, first token, first whole sentence, its audio);
- the fast path with 2 and 4 people asking at once.

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

FAST = "what is the capital of france"  # a short factual question: the fast path
COUNCIL = "should i rent or buy a flat this year"  # a decision: the whole council
STAGES = ("transcript", "first_token", "first_sentence", "first_audio")


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


async def bench_llm_turns(queues: QueueSettings, turns: int, folder: Path) -> dict:
    fast, council = speak(FAST, folder / "fast.wav"), speak(COUNCIL, folder / "council.wav")
    # The default council, its calls bounded as a person would bear them.
    patient = {f"{kind}_timeout_s": 900 for kind in ("member", "critique", "chair")}  # a busy machine: slow
    settings = AppSettings(queues=queues, council=CouncilSettings(**patient))
    services = await Services.open(settings)
    try:
        await one_turn(services, fast)  # warm up: the first Whisper call, the first espeak voice
        solo = [await one_turn(services, fast) for _ in range(turns)]
        whole = [await one_turn(services, council) for _ in range(turns)]
        together = {}
        for people in (2, 4):
            rounds = max(1, turns // people)
            samples = []
            for _ in range(rounds):
                samples += await asyncio.gather(*(one_turn(services, fast) for _ in range(people)))
            together[people] = [t["first_audio"] for t in samples]
    finally:
        await services.close()
    first_fast = [t["first_audio"] for t in solo]
    first_council = [t["first_audio"] for t in whole]
    return {
        "llm_fast_first_sound_ms": statistics.median(first_fast),
        "llm_fast_first_sound_p90_ms": percentile(first_fast, 90),
        "llm_council_first_sound_ms": statistics.median(first_council),
        "llm_council_first_sound_p90_ms": percentile(first_council, 90),
        "llm_fast_first_sound_2_ms": statistics.median(together[2]),
        "llm_fast_first_sound_4_ms": statistics.median(together[4]),
        "stages": {"fast": stages(solo), "council": stages(whole)},
        "turns": turns,
    }


async def bench_llm(queues: QueueSettings, worker_python: str, turns: int, env: dict[str, str]) -> dict:
    """An LLM worker of its own for the block; the voice worker is the caller's."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-llm-worker.log"
    worker = [worker_python, "-m", "voice_worker", "--log-level", "WARNING"]
    with process(worker, {**env, "WORKER_QUEUES": queues.llm_queue}, ready="worker ready", log=log, wait_s=300):
        generation = await bench_generation(queues, runs=5)
        with tempfile.TemporaryDirectory(prefix="council-bench-llm-") as folder:
            spoken = await bench_llm_turns(queues, turns, Path(folder))
    return generation | spoken


def report(result: dict) -> None:
    print(
        f"\nthe built-in model (SmolLM2-135M, one LLM worker, CPU): first token {result['llm_first_token_ms']:.0f} ms "
        f"after enqueue, {result['llm_tokens_per_s']:.1f} tokens/s"
    )
    print(f"  spoken question (whole recording) -> first answer sound, {result['turns']} turns each:")
    for route, key in (("fast path", "llm_fast_first_sound"), ("full council", "llm_council_first_sound")):
        s = result["stages"]["fast" if route == "fast path" else "council"]
        print(
            f"    {route:13} p50 {result[key + '_ms']:.0f} ms, p90 {result[key + '_p90_ms']:.0f} ms; where the time "
            f"goes (p50 from the end of speech): transcript {s['transcript']:.0f}, first token {s['first_token']:.0f}, "
            f"first whole sentence {s['first_sentence']:.0f}, its audio {s['first_audio']:.0f} ms"
        )
    print(
        f"    fast path, people at once: 2 -> p50 {result['llm_fast_first_sound_2_ms']:.0f} ms, "
        f"4 -> p50 {result['llm_fast_first_sound_4_ms']:.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--worker-python", default=str(ROOT / ".venv-worker/bin/python"))
    args = parser.parse_args()
    with private_redis() as url:
        env = {**os.environ, "COUNCIL_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
        queues = QueueSettings.from_env(env)
        log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-llm-voice-worker.log"
        voice = [args.worker_python, "-m", "voice_worker", "--log-level", "WARNING"]
        with process(voice, env, ready="worker ready", log=log):
            result = await bench_llm(queues, args.worker_python, args.turns, env)
    report(result)
    print(json.dumps({k: round(v, 1) for k, v in result.items() if isinstance(v, float)}))


if __name__ == "__main__":
    asyncio.run(main())
