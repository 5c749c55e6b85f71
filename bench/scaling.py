"""`batch_scaling_2w`: how batch transcription throughput grows from one CPU worker to two.

Each worker is a `python -m voice_worker` process of the worker venv, held to one core: pinned
with taskset to a core of its own and limited to one thread (WORKER_THREADS=1, OMP_NUM_THREADS=1).
Both runs transcribe the same files, flite-spoken short sentences, from the `batch` queue, after
a warm-up job per worker; the figure is the two-worker throughput over the one-worker throughput,
measured in one run. On a 2-core machine the app side and Redis share those cores with the
workers, so 2.0 is out of reach there: the figure says how much of it is left.

    .venv-app/bin/python -m bench.scaling --files 40    # its own redis-server on a free port
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

from queues import AsyncBlobStore, EventHub, JobClient, QueueSettings
from shared_schemas import EventType, TranscriptionJob

from .procs import ROOT, private_redis, process

SENTENCES = (
    "the meeting starts at nine",
    "please send me the report",
    "we need more time for testing",
    "the council has decided",
    "open the window before noon",
    "call me when you arrive",
    "the bridge will be finished in may",
    "turn left at the second light",
    "our budget is almost gone",
    "this plan has three weak points",
)
VOICES = ("slt", "kal16", "awb", "rms")


def speak_files(folder: Path, count: int) -> list[bytes]:
    """`count` short WAV files, each a sentence in one of flite's voices."""
    clips = []
    for i in range(count):
        path = folder / f"clip-{i}.wav"
        text, voice = SENTENCES[i % len(SENTENCES)], VOICES[(i // len(SENTENCES)) % len(VOICES)]
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
        clips.append(path.read_bytes())
    return clips


@contextmanager
def pinned_worker(settings: QueueSettings, core: int, python: str, log: Path):
    """One voice worker on `core` alone, one thread; yields once it says "worker ready"."""
    env = {
        **os.environ,
        "COUNCIL_REDIS_URL": settings.redis_url,
        "WORKER_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "WORKER_NAME": f"bench-scaling-{core}-{uuid.uuid4().hex[:6]}",
    }
    args = [python, "-m", "voice_worker", "--log-level", "WARNING"]
    taskset = shutil.which("taskset")
    if taskset:
        args = [taskset, "--cpu-list", str(core), *args]
    with process(args, env, ready="worker ready", log=log) as proc:
        if not taskset:
            os.sched_setaffinity(proc.pid, {core})
        yield proc


async def transcribe_all(settings: QueueSettings, clips: list[bytes]) -> float:
    """Seconds from enqueueing every clip on the batch queue (one pipeline) to the last transcript."""
    aredis = settings.connect_async()
    client = JobClient(settings, aconnection=aredis)
    blobs = AsyncBlobStore(settings, aredis)
    hub = EventHub(settings, aredis)
    await hub.start()
    session = f"bench-scaling-{uuid.uuid4().hex[:8]}"
    try:
        keys = [await blobs.put(session, data, ".wav") for data in clips]
        jobs = [
            TranscriptionJob(session_id=session, job_id=f"{session}-{i}", audio_key=key, format="wav")
            for i, key in enumerate(keys)
        ]
        async with hub.subscribe(session) as sub:
            await asyncio.to_thread(client.queue, settings.batch_queue)
            pipe = client.connection.pipeline()
            for job in jobs:
                client._build(job, settings.batch_queue, pipe)
            started = time.perf_counter()
            await asyncio.to_thread(pipe.execute)
            waiting = {job.job_id for job in jobs}
            while waiting:
                event = await sub.get(timeout=120)
                if event.terminal and event.job_id in waiting:
                    if event.type is EventType.FAILED:
                        raise RuntimeError(f"transcription {event.job_id} failed: {event.payload}")
                    waiting.discard(event.job_id)
            return time.perf_counter() - started
    finally:
        await hub.close()
        await aredis.aclose()


async def bench_scaling(settings: QueueSettings, files: int = 40) -> dict[str, float]:
    """{"batch_scaling_2w": 2-worker / 1-worker throughput, "batch_1w_files_per_s", "batch_2w_files_per_s"}."""
    if files < 2:
        raise ValueError("files must be at least 2")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise RuntimeError("batch_scaling_2w needs two cores to pin two workers to")
    python = os.environ.get("WORKER_PYTHON", str(ROOT / ".venv-worker/bin/python"))
    rates = {}
    with tempfile.TemporaryDirectory(prefix="council-bench-scaling-") as folder:
        clips = await asyncio.to_thread(speak_files, Path(folder), files)
        for count in (1, 2):
            with ExitStack() as stack:
                for n in range(count):
                    log = Path(folder) / f"worker-{count}-{n}.log"
                    stack.enter_context(pinned_worker(settings, cores[n], python, log))
                await transcribe_all(settings, clips[: 2 * count])  # warm-up: a first job per worker
                elapsed = await transcribe_all(settings, clips)
            rates[count] = files / elapsed
    return {
        "batch_scaling_2w": round(rates[2] / rates[1], 3),
        "batch_1w_files_per_s": round(rates[1], 2),
        "batch_2w_files_per_s": round(rates[2], 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--files", type=int, default=40)
    args = parser.parse_args()
    with private_redis() as url:
        result = await bench_scaling(QueueSettings.from_env({"COUNCIL_REDIS_URL": url}), args.files)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
