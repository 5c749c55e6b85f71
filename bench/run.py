"""`make bench`: round trips and throughput of the job path, measured in one run on one machine.

Prints a table, then one JSON line whose keys are read by tools outside the repository.
Starts its own worker (the worker interpreter), a floor echo process and a tiny HTTP service.
What it needs is checked first (preflight.py); each part says on stderr when it starts and how
long it took; Ctrl-C stops it and everything it started, with one line.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from queues import AsyncBlobStore, EventHub, JobClient, QueueSettings
from shared_schemas import EventType, PingJob, TranscriptionJob

from .llm import bench_llm
from .llm import report as report_llm
from .page import bench_page
from .preflight import Progress, missing
from .procs import ROOT, percentile, private_redis, process
from .stream import bench_stream
from .turns import bench_turns


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99)}


async def bench_rq(settings: QueueSettings, n: int, warmup: int) -> tuple[list[float], float]:
    aredis = settings.connect_async()
    client = JobClient(settings, aconnection=aredis)
    hub = EventHub(settings, aredis)
    await hub.start()
    session = f"bench-{uuid.uuid4().hex[:8]}"
    samples = []
    async with hub.subscribe(session) as sub:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            await client.aenqueue(PingJob(session_id=session, job_id=f"{session}-{i}"))
            event = await sub.get(timeout=10)
            elapsed = time.perf_counter() - t0
            assert event.type is EventType.PONG, event
            if i >= warmup:
                samples.append(elapsed)
        # Throughput: enqueue a burst in one pipeline, time until the worker has answered all.
        burst = [PingJob(session_id=session, job_id=f"{session}-burst-{i}") for i in range(n)]
        pipe = client.connection.pipeline()
        for job in burst:
            client._build(job, None, pipe)
        await asyncio.to_thread(pipe.execute)
        t0 = time.perf_counter()
        for _ in burst:
            await sub.get(timeout=30)
        rate = n / (time.perf_counter() - t0)
    await hub.close()
    await aredis.aclose()
    return samples, rate


async def bench_floor(settings: QueueSettings, n: int, warmup: int, env: dict[str, str]) -> list[float]:
    queue, channel = f"bench:floor:{uuid.uuid4().hex[:6]}", f"bench:floor:out:{uuid.uuid4().hex[:6]}"
    python = env["WORKER_PYTHON"]
    aredis = settings.connect_async()
    pubsub = aredis.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1)
    samples = []
    with process([python, "bench/floor_echo.py", settings.redis_url, queue, channel], env):
        await asyncio.sleep(0.5)
        for i in range(warmup + n):
            t0 = time.perf_counter()
            await aredis.lpush(queue, str(i))
            while (message := await pubsub.get_message(timeout=5)) is None or message["type"] != "message":
                pass
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
        await aredis.lpush(queue, "stop")
    await pubsub.aclose()
    await aredis.aclose()
    return samples


async def bench_http(n: int, warmup: int, env: dict[str, str]) -> list[float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-http-{port}.log"
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.http_echo:app",
        "--port",
        str(port),
        "--log-level",
        "info",
        "--no-access-log",
    ]
    samples = []
    with process(args, env, ready="Uvicorn running", log=log):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(warmup + n):
                t0 = time.perf_counter()
                response = await client.post("/ping", json={"job_id": str(i)})
                response.raise_for_status()
                if i >= warmup:
                    samples.append(time.perf_counter() - t0)
    return samples


def speak_clip(path: Path) -> None:
    text = "please summarize the main risks of this plan for me"  # 3.1 s in flite's slt voice
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)


async def bench_stt(settings: QueueSettings, runs: int) -> tuple[list[float], float, str]:
    clip = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-3s.wav"
    speak_clip(clip)
    data = clip.read_bytes()
    duration = (len(data) - 44) / 2 / 16000
    aredis = settings.connect_async()
    client = JobClient(settings, aconnection=aredis)
    blobs = AsyncBlobStore(settings, aredis)
    hub = EventHub(settings, aredis)
    await hub.start()
    session = f"bench-stt-{uuid.uuid4().hex[:8]}"
    samples, text = [], ""
    async with hub.subscribe(session) as sub:
        for i in range(runs + 1):
            key = await blobs.put(session, data, ".wav")
            t0 = time.perf_counter()
            await client.aenqueue(TranscriptionJob(session_id=session, job_id=f"{session}-{i}", audio_key=key))
            while (event := await sub.get(timeout=60)).type not in (EventType.TRANSCRIPT, EventType.FAILED):
                pass
            assert event.type is EventType.TRANSCRIPT, event.payload
            text = event.payload.text
            if i:
                samples.append(time.perf_counter() - t0)
    await hub.close()
    await aredis.aclose()
    return samples, duration, text


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--stt-runs", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--llm-turns", type=int, default=10)
    parser.add_argument("--worker-python", default=str(ROOT / ".venv-worker/bin/python"))
    args = parser.parse_args()
    with private_redis() as url:
        await run(args, url)


async def run(args: argparse.Namespace, url: str) -> None:
    env = {**os.environ, "COUNCIL_REDIS_URL": url, "WORKER_PYTHON": args.worker_python, "PYTHONPATH": str(ROOT)}
    settings = QueueSettings.from_env(env)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-worker.log"
    worker = [args.worker_python, "-m", "voice_worker", "--log-level", "WARNING"]
    say = Progress()
    say(f"starting a voice worker (it loads its models; its log: {log})")
    with process(worker, env, ready="worker ready", log=log) as worker_proc:
        say(f"{args.warmup + args.n} no-op jobs one by one, then {args.n} at once")
        rq_samples, rate = await bench_rq(settings, args.n, args.warmup)
        say(f"transcribing a 3 s clip {args.stt_runs + 1} times")
        stt_samples, clip_s, text = await bench_stt(settings, args.stt_runs)
        question = (Path(os.environ.get("TMPDIR", "/tmp")) / "bench-3s.wav").read_bytes()
        say(f"{args.turns} voice turns in espeak's voice, then {args.turns} in Piper's")
        espeak = await bench_turns(settings, ("espeak", "piper"), args.turns, question)  # the default
        piper = await bench_turns(settings, ("piper", "espeak"), args.turns, question)
        with tempfile.TemporaryDirectory(prefix="council-bench-") as folder:
            say(f"streamed voice: {args.turns} hands-free turns, then 2 and 4 people at once")
            streamed = await bench_stream(settings, args.worker_python, worker_proc.pid, args.turns, Path(folder))
            say("the page in Chromium with a fake microphone")
            page = await asyncio.to_thread(bench_page, settings, args.worker_python, Path(folder))
        llm = await bench_llm(settings, args.worker_python, args.llm_turns, env)  # with an LLM worker
    from .scaling import bench_scaling  # starts workers of its own, pinned to one core each

    say("a batch of 40 files on 1 worker, then 2")
    scaling = await bench_scaling(settings, files=40)
    say(f"the floor and HTTP round trips, {args.warmup + args.n} each")
    floor = await bench_floor(settings, args.n, args.warmup, env)
    http = await bench_http(args.n, args.warmup, env)
    say.finished()

    rq, fl, ht = summary(rq_samples), summary(floor), summary(http)
    stt_ms = statistics.median(stt_samples) * 1000
    rows = [
        ("RQ VoiceWorker + pub/sub (no-op job)", rq),
        ("floor: LPUSH/BRPOP + PUBLISH", fl),
        ("HTTP: httpx -> Starlette/uvicorn", ht),
    ]
    print(f"\n{'path':40} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, s in rows:
        print(f"{name:40} {s['p50']:8.2f} {s['p95']:8.2f} {s['p99']:8.2f}")
    print(f"\nno-op jobs per second, one worker process: {rate:.0f}")
    print(
        f"transcribe a {clip_s:.1f} s clip (Whisper tiny.en, CPU), median of {len(stt_samples)}: "
        f"{stt_ms:.0f} ms -> {text!r}"
    )
    print(f"\nturns with a scripted LLM that answers at once, median of {args.turns}:")
    print(f"{'chair voice':40} {'ttfa ms':>10} {'voice turn ms':>14}")
    for name, r in (("max (espeak-ng, the default)", espeak), ("joe (Piper)", piper)):
        print(f"{name:40} {r['ttfa_ms']:10.1f} {r['voice_turn_ms']:14.1f}")
    solo, cpu = streamed["solo"], streamed["cpu"]
    print(f"\nstreamed voice, hands-free, {solo['turns']} turns (a client streaming 20 ms frames in real time):")
    print(
        f"  last voiced frame sent -> first answer audio received: p50 {solo['voice_response_ms']:.0f} ms, "
        f"p90 {solo['voice_response_p90_ms']:.0f} ms"
    )
    print(
        f"    of which: speech end -> turn decided {solo['endpoint_ms']:.0f} ms; turn decided -> final transcript "
        f"{solo['stt_final_ms']:.0f} ms; turn decided -> first audio {solo['first_audio_after_turn_ms']:.0f} ms"
    )
    for n, r in streamed["together"].items():
        print(
            f"  {n} people speaking at once: p50 {r['voice_response_ms']:.0f} ms, "
            f"p90 {r['voice_response_p90_ms']:.0f} ms"
        )
    print(
        f"  a silent open microphone costs the worker {cpu['per_silent_mic_pct']:.2f} % of a core "
        f"(idle worker: {cpu['idle_pct']:.2f} %)"
    )
    print(f"  heard: {streamed['heard'][:4]}")
    reading = streamed["reading"]
    print(
        f"  a person reading one 44 s sentence with comma pauses: {reading['turns']} turns decided, "
        f"{reading['confirmed']} confirmed, {reading['answers_over_speaker']} answers over the reader, "
        f"{reading['words_kept']:.0%} of the words kept"
    )
    if "skipped" in page:
        print(f"\nin the page: skipped ({page['skipped']})")
    else:
        print(
            f"\nin the page (Chromium, fake microphone): end of speech -> first answer sound p50 "
            f"{statistics.median(page['first_sound_ms']):.0f} ms over {len(page['first_sound_ms'])} turns; "
            f"Stop -> silence p50 {statistics.median(page['stop_ms']):.1f} ms over {len(page['stop_ms'])} stops"
        )
    print(
        f"\nbatch of 40 files on the batch queue, one core per worker: 1 worker "
        f"{scaling['batch_1w_files_per_s']:.2f} files/s, 2 workers {scaling['batch_2w_files_per_s']:.2f} files/s "
        f"-> x{scaling['batch_scaling_2w']:.2f}"
    )
    report_llm(llm)
    result = {
        "rq_p50_ms": round(rq["p50"], 3),
        "rq_p95_ms": round(rq["p95"], 3),
        "rq_p99_ms": round(rq["p99"], 3),
        "floor_p50_ms": round(fl["p50"], 3),
        "floor_p99_ms": round(fl["p99"], 3),
        "http_p50_ms": round(ht["p50"], 3),
        "http_p99_ms": round(ht["p99"], 3),
        "jobs_per_s": round(rate, 1),
        "stt_3s_ms": round(stt_ms, 1),
        "stt_clip_s": round(clip_s, 2),
        "ttfa_ms": round(espeak["ttfa_ms"], 1),
        "voice_turn_ms": round(espeak["voice_turn_ms"], 1),
        "ttfa_piper_ms": round(piper["ttfa_ms"], 1),
        "voice_turn_piper_ms": round(piper["voice_turn_ms"], 1),
        "batch_scaling_2w": round(scaling["batch_scaling_2w"], 3),
        "voice_response_ms": round(solo["voice_response_ms"], 1),
        "voice_response_p90_ms": round(solo["voice_response_p90_ms"], 1),
        "endpoint_ms": round(solo["endpoint_ms"], 1),
        "stt_final_ms": round(solo["stt_final_ms"], 1),
        "first_audio_after_turn_ms": round(solo["first_audio_after_turn_ms"], 1),
        "voice_response_2_ms": round(streamed["together"][2]["voice_response_ms"], 1),
        "voice_response_4_ms": round(streamed["together"][4]["voice_response_ms"], 1),
        "silent_mic_cpu_pct": round(cpu["per_silent_mic_pct"], 3),
        "words_kept": reading["words_kept"],
        "answers_over_speaker": reading["answers_over_speaker"],
        **{key: round(value, 1) for key, value in llm.items() if key.startswith("llm_")},
        "n": args.n,
    }
    if "skipped" not in page:
        result["page_voice_response_ms"] = round(statistics.median(page["first_sound_ms"]), 1)
        result["page_voice_response_p90_ms"] = round(percentile(page["first_sound_ms"], 90), 1)
        # The same turns with the answers played directly (headphones; how every page played them
        # before #20): what the loopback playback that lets the echo canceller work costs.
        result["page_voice_response_direct_ms"] = round(statistics.median(page["first_sound_direct_ms"]), 1)
        result["stop_to_silence_ms"] = round(statistics.median(page["stop_ms"]), 1)
        result["stop_to_silence_p90_ms"] = round(percentile(page["stop_ms"], 90), 1)
    print(json.dumps(result))


def cli() -> int:
    """Check what the benchmark needs, run it; Ctrl-C or a part that cannot start is one line."""
    pick = argparse.ArgumentParser(add_help=False)
    pick.add_argument("--worker-python", default=str(ROOT / ".venv-worker/bin/python"))
    known, _ = pick.parse_known_args()
    if problems := missing(known.worker_python):
        for line in problems:
            print(f"make bench: {line}", file=sys.stderr)
        return 2
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("\nmake bench: interrupted; the processes and the Redis it started are stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a process of its own did not start (procs.process): its log says why
        print(f"make bench: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
