"""`make load`: many concurrent WebSocket sessions doing voice turns against a few CPU workers.

Starts a redis-server of its own, `--workers` voice workers (each pinned to one core, one thread,
as in bench/scaling.py) and the app (`python -m web`, echo responder: no LLM), then opens
`--sessions` WebSockets at once; each does `--turns` spoken turns: audio_start, a flite WAV in
8 KiB binary frames, audio_end, and waits for the turn's end. Reports errors (any error frame,
failed job or turn, dropped socket, timeout), event-delivery latency (the event's `time`, set
when it is published, to its arrival at the client; one machine, one clock), voice turn latency
(audio_end sent -> first audio of the answer, and -> turn_done), the depth of the speech,
realtime and batch queues sampled every 0.5 s, and the workers' throughput.

    .venv-app/bin/python -m bench.load --sessions 200 --turns 2 --workers 2
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import redis.asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from queues import QueueSettings

from .procs import ROOT, free_port, percentile, private_redis, process
from .scaling import pinned_worker

SENTENCE = "please call me back tomorrow morning"
CHUNK = 8192

# The load generator is one client (one address, one anonymous user) standing in for hundreds of
# people: the caps on what one client or user may hold (web/__main__.py, web/streams.py,
# web/pace.py, web/requests.py) are lifted for it, or they would refuse it by design.
ONE_CLIENT_FOR_MANY = {
    "COUNCIL_MAX_CONNECTIONS_PER_CLIENT": "100000",
    "COUNCIL_MAX_HEADS_PER_CLIENT": "100000",
    "COUNCIL_MAX_STREAMS_PER_USER": "0",
    "COUNCIL_MAX_FRAMES_PER_USER_S": "0",
    "COUNCIL_MAX_REQUESTS_PER_USER": "0",
    "COUNCIL_MAX_RECORDING_BYTES_PER_USER": str(2**40),
}


@dataclass
class Tally:
    """What all sessions saw, gathered in one place (one event loop: no locks needed)."""

    errors: list[str] = field(default_factory=list)
    event_latency_s: list[float] = field(default_factory=list)
    latency_by_type: dict[str, list[float]] = field(default_factory=dict)
    first_audio_s: list[float] = field(default_factory=list)
    turn_s: list[float] = field(default_factory=list)
    turns_done: int = 0
    transcripts_right: int = 0
    jobs_done: int = 0  # transcripts and spoken sentences received: one worker job each
    connected: int = 0


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", "", text.lower()).split()


def published_at(frame: dict) -> float:
    return datetime.fromisoformat(frame["time"]).timestamp()


async def voice_turn(ws: ClientConnection, audio: bytes, voice: str, tally: Tally, timeout_s: float) -> None:
    await ws.send(json.dumps({"type": "audio_start", "format": "wav", "voice": voice}))
    for start in range(0, len(audio), CHUNK):
        await ws.send(audio[start : start + CHUNK])
    await ws.send(json.dumps({"type": "audio_end"}))
    sent = time.perf_counter()
    first_audio = None
    async with asyncio.timeout(timeout_s):
        while True:
            frame = json.loads(await ws.recv())
            now = time.time()
            if frame["type"] == "error":
                raise TurnError(f"error frame: {frame['error']}")
            if frame["id"] is None:
                continue
            kind = frame["type"]
            tally.event_latency_s.append(now - published_at(frame))
            tally.latency_by_type.setdefault(kind, []).append(tally.event_latency_s[-1])
            if kind == "failed":
                raise TurnError(f"failed job {frame['job_id']}: {frame['payload'].get('code')}")
            if kind == "transcript":
                tally.jobs_done += 1
                tally.transcripts_right += words(frame["payload"]["text"]) == words(SENTENCE)
            elif kind == "audio":
                tally.jobs_done += bool(frame["payload"].get("last", True))
                if first_audio is None:
                    first_audio = time.perf_counter() - sent
            elif kind == "turn_done":
                if frame["payload"]["status"] != "done":
                    raise TurnError(f"turn {frame['payload']['status']}: {frame['payload'].get('error')}")
                if first_audio is None:
                    raise TurnError("turn done without speech")
                tally.first_audio_s.append(first_audio)
                tally.turn_s.append(time.perf_counter() - sent)
                tally.turns_done += 1
                return


class TurnError(Exception):
    pass


async def session(url: str, audio: bytes, turns: int, voice: str, tally: Tally, timeout_s: float) -> None:
    try:
        # ping_interval=None: a browser does not ping; the server's own pings are still answered.
        async with connect(url, ping_interval=None, open_timeout=60, max_size=2**20) as ws:
            hello = json.loads(await ws.recv())
            if hello.get("type") != "session":
                raise TurnError(f"no session frame: {hello}")
            tally.connected += 1
            for _ in range(turns):
                await voice_turn(ws, audio, voice, tally, timeout_s)
    except TurnError as exc:
        tally.errors.append(str(exc))
    except TimeoutError:
        tally.errors.append(f"a turn took longer than {timeout_s:g} s")
    except (OSError, WebSocketException) as exc:
        tally.errors.append(f"connection: {type(exc).__name__}: {exc}")


async def sample_depths(settings: QueueSettings, series: list[tuple[float, int, int, int]], started: float) -> None:
    conn = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        while True:
            async with conn.pipeline(transaction=False) as pipe:
                for name in settings.queue_names:
                    pipe.llen(f"rq:queue:{name}")
                speech, realtime, batch = await pipe.execute()
            series.append((time.perf_counter() - started, speech, realtime, batch))
            await asyncio.sleep(0.5)
    finally:
        await conn.aclose()


async def run_load(args: argparse.Namespace, settings: QueueSettings, app_url: str, audio: bytes) -> dict:
    tally = Tally()
    series: list[tuple[float, int, int, int]] = []
    ws_url = app_url.replace("http://", "ws://") + "/ws/chat"
    started = time.perf_counter()
    sampler = asyncio.create_task(sample_depths(settings, series, started))
    await asyncio.gather(
        *(session(ws_url, audio, args.turns, args.voice, tally, args.turn_timeout) for _ in range(args.sessions))
    )
    elapsed = time.perf_counter() - started
    sampler.cancel()
    return {
        "sessions": args.sessions,
        "sessions_connected": tally.connected,
        "turns_per_session": args.turns,
        "workers": args.workers,
        "errors": len(tally.errors),
        "error_samples": tally.errors[:5],
        "turns_done": tally.turns_done,
        "transcripts_right": tally.transcripts_right,
        "events": len(tally.event_latency_s),
        "event_latency_ms": ms(tally.event_latency_s),
        "event_latency_ms_by_type": {kind: ms(values) for kind, values in sorted(tally.latency_by_type.items())},
        "first_audio_ms": ms(tally.first_audio_s),
        "turn_done_ms": ms(tally.turn_s),
        "elapsed_s": round(elapsed, 1),
        "turns_per_s": round(tally.turns_done / elapsed, 2),
        "jobs_per_s": round(tally.jobs_done / elapsed, 2),
        "max_depth_speech": max((p for _, p, _, _ in series), default=0),
        "max_depth_realtime": max((r for _, _, r, _ in series), default=0),
        "max_depth_batch": max((b for _, _, _, b in series), default=0),
        "depth_series": series,
    }


def ms(values: list[float]) -> dict[int, float | None]:
    return {q: round(percentile(values, q) * 1000, 1) if values else None for q in (50, 99)}


def report(result: dict) -> None:
    print(
        f"\n{result['sessions']} WebSocket sessions x {result['turns_per_session']} voice turns, "
        f"{result['workers']} CPU workers (one core, one thread each), echo responder"
    )
    print(f"{'errors':42} {result['errors']}" + (f"  e.g. {result['error_samples']}" if result["errors"] else ""))
    print(f"{'turns completed':42} {result['turns_done']} (transcripts right: {result['transcripts_right']})")
    for label, key in (
        ("event delivery (published -> client)", "event_latency_ms"),
        ("voice turn: audio_end -> first audio", "first_audio_ms"),
        ("voice turn: audio_end -> turn_done", "turn_done_ms"),
    ):
        p = result[key]
        print(f"{label:42} p50 {p[50]} ms, p99 {p[99]} ms")
        if key == "event_latency_ms":
            for kind, q in result["event_latency_ms_by_type"].items():
                print(f"{'  ' + kind:42} p50 {q[50]} ms, p99 {q[99]} ms")
    print(f"{'throughput':42} {result['turns_per_s']} turns/s, {result['jobs_per_s']} worker jobs/s")
    print(f"{'run time':42} {result['elapsed_s']} s")
    print(
        f"{'queue depth, max':42} speech {result['max_depth_speech']}, realtime {result['max_depth_realtime']},"
        f" batch {result['max_depth_batch']}"
    )
    series = result["depth_series"]
    step = max(1, len(series) // 16)
    print(
        "queue depth over time (s: speech/realtime):  "
        + "  ".join(f"{t:.0f}: {p}/{r}" for t, p, r, _ in series[::step])
    )


def speak(folder: Path) -> bytes:
    path = folder / "turn.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", SENTENCE, "-o", str(path)], check=True)
    return path.read_bytes()


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=2, help="voice turns per session")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--voice", default="max", help="the answer's voice (max: espeak-ng, the chair's)")
    parser.add_argument("--turn-timeout", type=float, default=600.0, help="seconds one turn may take")
    parser.add_argument("--worker-python", default=str(ROOT / ".venv-worker/bin/python"))
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    folder = Path(tempfile.mkdtemp(prefix="council-load-"))  # the app's and workers' logs stay there
    with private_redis() as url, ExitStack() as stack:
        settings = QueueSettings.from_env({"COUNCIL_REDIS_URL": url})
        audio = speak(folder)
        for n in range(args.workers):
            stack.enter_context(
                pinned_worker(settings, cores[n % len(cores)], args.worker_python, folder / f"worker-{n}.log")
            )
        port = free_port()
        env = {**os.environ, "COUNCIL_REDIS_URL": url, "COUNCIL_RESPONDER": "echo", **ONE_CLIENT_FOR_MANY}
        app = [sys.executable, "-m", "web", "--port", str(port), "--log-level", "WARNING"]
        stack.enter_context(process(app, env, log=folder / "app.log"))
        app_url = f"http://127.0.0.1:{port}"
        await wait_healthy(app_url)
        # Warm-up, not measured: a first turn per worker loads what its engines load lazily.
        warm = argparse.Namespace(**{**vars(args), "sessions": args.workers, "turns": 2})
        warmed = await run_load(warm, settings, app_url, audio)
        if warmed["errors"]:
            raise RuntimeError(f"the warm-up turns failed: {warmed['error_samples']}; logs in {folder}")
        result = await run_load(args, settings, app_url, audio)
    report(result)
    print(f"logs: {folder}")
    print(json.dumps({k: v for k, v in result.items() if k != "depth_series"}))


async def wait_healthy(url: str, timeout_s: float = 120) -> None:
    """Until /health says 200: Redis answers and a worker serves the realtime queue."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url) as client:
        while True:
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app at {url} did not become healthy")
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main())
