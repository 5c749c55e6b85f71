"""The GPU engines through the normal job path: XTTS v2 and Parakeet TDT 0.6B v2, random weights
at their published size, served by a real voice worker against a Redis of the benchmark's own.

    python -m bench.gpu.run --size published --device cuda --out bench/gpu/results/h200.json
    python -m bench.gpu.run --size tiny --device cpu --out /tmp/gpu-bench.json   # anywhere, quickly

It builds the models into a temporary folder (bench/gpu/models.py), saves them as operators get
them, starts `redis-server` and `python -m voice_worker` (STT_ENGINE=parakeet, TTS_ENGINE=coqui,
WORKER_DEVICE=...), and enqueues jobs with `queues.JobClient` as the app does, reading their events
from the session streams (`queues.EventHub`):

- synthesis: one sentence a job, XTTS streaming; time from the enqueue to the first audio chunk
  at the client, and audio seconds made per second of the job (p50 over the sentences);
- transcription: a 3 s clip (p50), and 64 clips of 5-15 s enqueued on `batch` in one transaction,
  which the worker recognizes in one forward pass (WORKER_BATCH=64): the real-time factor;
- the hands-free turn: a `listen` job fed 20 ms PCM16 frames in real time (`queues.MicWriter`, as
  web/mic.py), and on `turn_started` + its transcript the answer's synthesis on `speech`, as the
  app would with a council that answers at once: `first_audio_after_turn_ms`.

Needs only shared_schemas, queues, billing, voice_worker and their dependencies: it runs under the
worker's Python (3.11 here, the GPU machine's 3.12). Prints one JSON line, and writes it to --out.
"""

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from billing import Ledger
from queues import AsyncBlobStore, EventHub, JobClient, MicWriter, QueueSettings, mic
from shared_schemas import (
    EventType,
    ListenJob,
    SynthesisJob,
    TranscriptionJob,
    new_stream_ids,
    speech_job_id,
    transcript_job_id,
)

from ..procs import percentile, private_redis, process
from . import models
from .clips import CARRIED, clip_of, speech, wav_bytes

ROOT = Path(__file__).resolve().parents[2]
FRAME = 320  # samples in a 20 ms frame, as the page sends
VOICE = "Claribel_Dervla"  # the built-in speaker "Claribel Dervla", made fit for a voice name by the engine
ANSWER = "Paris is the capital of France, and it has been for a very long time."
SENTENCES = [
    "The council has considered your question carefully and will answer now.",
    "Paris is the capital of France, and it has been for centuries.",
    "The library opens at ten on Sundays and closes at four.",
    "It is about a thousand kilometres from Paris to Berlin by road.",
    "Jane Austen wrote the novel Pride and Prejudice in eighteen thirteen.",
    "The quick brown fox jumps over the lazy dog by the river.",
    "We should look at the costs before we decide anything at all.",
    "Three members agree with the plan, and one of them has doubts.",
    "The weather tomorrow will be cloudy, with some rain in the evening.",
    "Your meeting with the design team has moved to half past two.",
    "A good answer takes a moment, so thank you for your patience.",
    "The main risk is that the budget runs out before the launch.",
    "Please speak a little more slowly so that I can follow you.",
    "The train to Lyon leaves from platform six in twenty minutes.",
    "Most of the council thinks the second option is the safer one.",
    "This sentence is here to measure how quickly the voice can start.",
    "The report says that sales grew by four percent last quarter.",
    "If you want, I can read the whole summary aloud for you.",
    "The museum is closed on Mondays, but open late on Thursdays.",
    "We have heard your question, and here is what we think of it.",
    "That was the last sentence, and the measurement is now complete.",
]


def find_redis_server(given: str | None) -> str:
    for candidate in (given, shutil.which("redis-server"), str(CARRIED / "redis-server")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("no redis-server: give --redis-server PATH (bench/gpu/wheels.sh unpacks one into .whl/)")


async def next_event(sub: Any, job_id: str, timeout: float) -> Any:
    while True:
        event = await sub.get(timeout=timeout)
        if event.job_id == job_id:
            return event


async def bench_synthesis(client: JobClient, hub: EventHub, sentences: list[str], timeout: float) -> dict[str, Any]:
    session = f"gpu-tts-{uuid.uuid4().hex[:8]}"
    first, rates, audio_s, chunks = [], [], [], []
    async with hub.subscribe(session) as sub:
        for i, text in enumerate([SENTENCES[0], *sentences]):  # the first one warms up
            job_id = f"{session}-{i}"
            t0 = time.perf_counter()
            await client.aenqueue(SynthesisJob(session_id=session, job_id=job_id, text=text, voice=VOICE))
            made, count, t_first = 0.0, 0, None
            while True:
                event = await next_event(sub, job_id, timeout)
                if event.type is EventType.FAILED:
                    raise RuntimeError(f"synthesis failed: {event.payload}")
                if event.type is not EventType.AUDIO:
                    continue
                now = time.perf_counter()
                t_first = t_first or now
                made += event.payload.duration_s
                count += 1
                if event.payload.last:
                    break
            if i:
                first.append((t_first - t0) * 1000)
                rates.append(made / (now - t0))
                audio_s.append(made)
                chunks.append(count)
    return {
        "xtts_first_chunk_ms": round(statistics.median(first), 1),
        "xtts_first_chunk_p90_ms": round(percentile(first, 90), 1),
        "xtts_audio_s_per_s": round(statistics.median(rates), 3),
        "xtts_audio_s_per_sentence": round(statistics.median(audio_s), 3),
        "xtts_chunks_per_sentence": statistics.median(chunks),
        "xtts_sentences": len(first),
    }


async def bench_clip(client: JobClient, hub: EventHub, blobs: AsyncBlobStore, data: bytes, runs: int, timeout: float):
    session = f"gpu-stt-{uuid.uuid4().hex[:8]}"
    samples, text = [], ""
    async with hub.subscribe(session) as sub:
        for i in range(runs + 2):  # two warm up
            key = await blobs.put(session, data, ".wav")
            job_id = f"{session}-{i}"
            t0 = time.perf_counter()
            await client.aenqueue(TranscriptionJob(session_id=session, job_id=job_id, audio_key=key))
            while (event := await next_event(sub, job_id, timeout)).type not in (
                EventType.TRANSCRIPT,
                EventType.FAILED,
            ):
                pass
            if event.type is EventType.FAILED:
                raise RuntimeError(f"transcription failed: {event.payload}")
            if i >= 2:
                samples.append((time.perf_counter() - t0) * 1000)
            text = event.payload.text
    return {
        "parakeet_3s_ms": round(statistics.median(samples), 1),
        "parakeet_3s_p90_ms": round(percentile(samples, 90), 1),
        "parakeet_3s_runs": len(samples),
        "parakeet_3s_words": len(text.split()),
    }


async def bench_batch(
    settings: QueueSettings, client: JobClient, hub: EventHub, blobs: AsyncBlobStore, voice: np.ndarray | None,
    files: int, timeout: float, worker_log: Path, warmups: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """`files` clips of 5-15 s waiting on `batch` together (one transaction), `warmups` + 1 times."""
    lengths = np.random.default_rng(7).uniform(5, 15, files)
    datas = [wav_bytes(clip_of(voice, float(s), seed=n)) for n, s in enumerate(lengths)]
    result: dict[str, Any] = {}
    for run in range(warmups + 1):
        session = f"gpu-batch-{run}-{uuid.uuid4().hex[:8]}"
        keys = [await blobs.put(session, d, ".wav") for d in datas]
        jobs = [
            TranscriptionJob(session_id=session, job_id=f"{session}-{n}", audio_key=key) for n, key in enumerate(keys)
        ]
        log_before = worker_log.stat().st_size
        async with hub.subscribe(session) as sub:
            t0 = time.perf_counter()
            await client.aenqueue_all(jobs, queue=settings.batch_queue)
            waiting = {j.job_id for j in jobs}
            while waiting:
                event = await sub.get(timeout=timeout)
                if event.job_id in waiting and event.type in (EventType.TRANSCRIPT, EventType.FAILED):
                    if event.type is EventType.FAILED:
                        raise RuntimeError(f"batch transcription failed: {event.payload}")
                    waiting.discard(event.job_id)
            wall = time.perf_counter() - t0
        audio = float(lengths.sum())
        with open(worker_log, "rb") as f:
            f.seek(log_before)
            said = f.read().decode(errors="replace")
        taken = [int(w) for w in _numbers_before(said, " files in one batch")]
        entries = Ledger(client.connection, settings.key_prefix).entries()
        compute_ms = sum(e.get("compute_ms", 0) for e in entries if str(e.get("ref", "")).startswith(session))
        result = {
            f"parakeet_batch{files}_rtf": round(wall / audio, 5),
            f"parakeet_batch{files}_s": round(wall, 3),
            f"parakeet_batch{files}_audio_s": round(audio, 1),
            f"parakeet_batch{files}_compute_ms": round(compute_ms, 1),
            # The batches the worker took off the queue and gave the engine at once (its log says so).
            f"parakeet_batch{files}_taken": taken,
        }
    return result


def _numbers_before(text: str, marker: str) -> list[str]:
    found = []
    for line in text.splitlines():
        at = line.find(marker)
        if at > 0:
            word = line[:at].rsplit(" ", 1)[-1]
            if word.isdigit():
                found.append(word)
    return found


async def bench_turns(
    settings: QueueSettings, client: JobClient, hub: EventHub, voice: np.ndarray, turns: int, timeout: float
) -> dict[str, Any]:
    """Hands-free turns as the page and the app make them: frames in real time, the answer's speech
    enqueued when the turn's transcript arrives (a council that answers at once)."""
    session = f"gpu-turn-{uuid.uuid4().hex[:8]}"
    stream_id, turn_prefix = new_stream_ids()
    writer = MicWriter(settings, client.aconnection, stream_id)
    job = ListenJob(session_id=session, job_id=stream_id, stream_key=writer.keys.stream, turn_prefix=turn_prefix)
    pcm = voice.astype("<i2").tobytes()
    silence = bytes(FRAME * 2)
    state: dict[str, Any] = {"sent": 0, "start": 0.0}
    decided, transcribed, first_audio, endpoint = [], [], [], []
    listening = asyncio.Event()

    async def send(data: bytes) -> None:
        for i in range(0, len(data), FRAME * 2):
            due = state["start"] + state["sent"] * 0.02
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            await writer.append(data[i : i + FRAME * 2])
            state["sent"] += 1

    async with hub.subscribe(session) as sub:
        await client.aenqueue(job)
        state["start"] = time.perf_counter()

        async def read() -> None:
            current: dict[str, Any] = {}
            while True:
                event = await sub.get(timeout=timeout)
                now = time.perf_counter()
                if event.type is EventType.LISTENING:
                    listening.set()
                elif event.type is EventType.FAILED:
                    raise RuntimeError(f"{event.job_id} failed: {event.payload}")
                elif event.type is EventType.TURN_STARTED:
                    current = {"turn": event.job_id, "decided": now}
                elif (
                    current
                    and event.job_id == transcript_job_id(current["turn"])
                    and event.type is EventType.TRANSCRIPT
                ):
                    current["transcript"] = now
                    speech_job = SynthesisJob(
                        session_id=session, job_id=speech_job_id(current["turn"], 0), text=ANSWER, voice=VOICE,
                        turn_id=current["turn"], index=0,
                    )  # fmt: skip
                    await client.aenqueue(speech_job)
                elif event.type is EventType.AUDIO and current and event.job_id == speech_job_id(current["turn"], 0):
                    if "first_audio" not in current:
                        current["first_audio"] = now
                    if event.payload.last:
                        current["done"] = now
                        state["turns"].put_nowait(current)
                        current = {}

        state["turns"] = asyncio.Queue()
        reader = asyncio.create_task(read())
        try:
            while not listening.is_set():
                await send(silence * 5)
                if time.perf_counter() - state["start"] > timeout:
                    raise RuntimeError("no listener took the stream")
            for n in range(turns + 1):  # the first turn warms up
                await send(silence * 25)
                await send(pcm)
                speech_end = time.perf_counter()
                while state["turns"].empty():
                    if reader.done():
                        reader.result()
                    await send(silence * 5)
                    if time.perf_counter() - speech_end > timeout:
                        raise RuntimeError("a turn took too long")
                turn = state["turns"].get_nowait()
                if n:
                    endpoint.append((turn["decided"] - speech_end) * 1000)
                    decided.append((turn["first_audio"] - turn["decided"]) * 1000)
                    transcribed.append((turn["transcript"] - turn["decided"]) * 1000)
                    first_audio.append((turn["first_audio"] - speech_end) * 1000)
                await send(silence * 25)
            await writer.close(mic.END)
        finally:
            reader.cancel()
    return {
        "first_audio_after_turn_ms": round(statistics.median(decided), 1),
        "turn_endpoint_ms": round(statistics.median(endpoint), 1),
        "turn_transcript_ms": round(statistics.median(transcribed), 1),
        "turn_voice_response_ms": round(statistics.median(first_audio), 1),
        "turns": len(decided),
    }


def machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": device, "torch": torch.__version__, "python": platform.python_version()}
    info["gpu_name"] = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else None
    try:
        import nemo
        import TTS

        info["coqui_tts"], info["nemo"] = TTS.__version__, nemo.__version__
    except (ImportError, AttributeError):
        pass
    return info


def build(folder: Path, size: str) -> tuple[Path, Path, float]:
    started = time.perf_counter()
    xtts = models.build_xtts(folder / "coqui", size)  # type: ignore[arg-type]
    gc.collect()
    nemo_file = models.build_parakeet(folder / "parakeet", size)  # type: ignore[arg-type]
    gc.collect()
    return xtts, nemo_file, time.perf_counter() - started


async def measure(args: argparse.Namespace, url: str, folder: Path, xtts: Path, nemo_file: Path) -> dict[str, Any]:
    voice, speech_from = speech(args.speech, folder)
    turn_model = Path(args.turn_model) if args.turn_model else CARRIED / "smart-turn-v3.2-cpu.onnx"
    turn_reason = None
    if voice is None:
        turn_reason = speech_from
    elif args.turns == 0:
        turn_reason = "--turns 0"
    elif not turn_model.is_file() and _distribution("pipecat-ai") is None:
        turn_reason = "no Smart Turn model (carry .whl/smart-turn-v3.2-cpu.onnx or give --turn-model)"
    env = {
        **os.environ,
        "COUNCIL_REDIS_URL": url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "STT_ENGINE": "parakeet",
        "TTS_ENGINE": "coqui",
        "WORKER_DEVICE": args.device,
        "PARAKEET_MODEL": str(nemo_file),
        "COQUI_MODEL_DIR": str(xtts),
        "WORKER_BATCH": str(args.batch),
        "WORKER_LISTENERS": "0" if turn_reason else "1",
        "WORKER_THREADS": str(args.threads),
        "WORKER_STALL": "600",
    }
    if turn_model.is_file():
        env["TURN_MODEL"] = str(turn_model)
    settings = QueueSettings.from_env(env)
    log = folder / "worker.log"
    worker = [args.worker_python, "-m", "voice_worker", "--log-level", "INFO"]
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    with process(worker, env, ready="worker ready", log=log, wait_s=args.timeout * 5):
        result["worker_start_s"] = round(time.perf_counter() - t0, 1)
        aredis = settings.connect_async()
        client = JobClient(settings, aconnection=aredis)
        blobs = AsyncBlobStore(settings, aredis)
        hub = EventHub(settings, aredis)
        await hub.start()
        try:
            result |= await bench_synthesis(client, hub, SENTENCES[1 : 1 + args.sentences], args.timeout)
            three = wav_bytes(clip_of(voice, 3.0, seed=0))
            result |= await bench_clip(client, hub, blobs, three, args.runs, args.timeout)
            result |= await bench_batch(
                settings, client, hub, blobs, voice, args.batch, args.timeout, log, warmups=args.batch_warmups
            )
            if turn_reason is None:
                result |= await bench_turns(settings, client, hub, voice, args.turns, args.timeout)
            else:
                result["first_audio_after_turn_ms"] = None
                result["turn_skipped"] = turn_reason
        except BaseException:
            print(log.read_text(errors="replace")[-6000:], file=sys.stderr)
            raise
        finally:
            await hub.close()
            await aredis.aclose()
            if args.worker_log:
                args.worker_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, args.worker_log)
    result["speech_clip"] = speech_from if voice is not None else None
    return result


def _distribution(name: str) -> Any:
    from importlib import metadata

    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=models.SIZES, default="published")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--redis-server", default=None)
    parser.add_argument("--worker-python", default=sys.executable)
    parser.add_argument(
        "--speech", default=None, help="16 kHz mono PCM16 WAV of speech (default .whl/speech.wav, or flite)"
    )
    parser.add_argument("--turn-model", default=None, help="a smart-turn-v3 .onnx (default: .whl/ or pipecat-ai's)")
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20, help="transcriptions of the 3 s clip")
    parser.add_argument("--batch", type=int, default=64, help="clips of 5-15 s recognized together")
    parser.add_argument("--batch-warmups", type=int, default=1, help="batches before the one measured")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 2))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one event")
    parser.add_argument("--worker-log", type=Path, default=None, help="keep the worker's log there")
    args = parser.parse_args(argv)
    if args.sentences > len(SENTENCES) - 1:
        parser.error(f"--sentences: at most {len(SENTENCES) - 1}")
    server = find_redis_server(args.redis_server)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="council-gpu-bench-") as name:
        folder = Path(name)
        xtts, nemo_file, build_s = build(folder, args.size)
        with private_redis(server) as url:
            figures = asyncio.run(measure(args, url, folder, xtts, nemo_file))
    cap = models.XTTS_BENCH_AUDIO_TOKENS if args.size == "published" else models.XTTS_TINY["gpt_max_audio_tokens"]
    result = {
        **figures,
        **machine(args.device),
        "size": args.size,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_s": round(build_s, 1),
        "total_s": round(time.perf_counter() - started, 1),
        "notes": [
            "random weights at the architecture's size: the compute of the real model, not its words or voice",
            f"XTTS generation capped at {cap - 3} audio tokens ({(cap - 3) * 1024 / 22050:.1f} s) a sentence through "
            "gpt_max_audio_tokens, its stop token suppressed: random weights do not stop where speech would",
            "Parakeet: greedy TDT, max_symbols 10; a random joint emits arbitrary pieces, so decoding work may differ "
            "from the trained model's",
            "times are at the client: enqueue through Redis to the event back, the worker's own path",
            "batch: the worker takes WORKER_BATCH waiting files together (_taken) and Parakeet recognizes them "
            "in one forward pass (its batch_size is WORKER_BATCH)",
        ],
    }
    line = json.dumps(result)
    print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
