"""The listener under load (issue #20): people streaming questions in real time, hands-free, to one
worker, alone and four at once, with and without a CPU hog beside the worker (`stress-ng --cpu N`,
a Debian package; `scripts/system-deps.sh test` installs it). For each case: end of speech -> first
answer audio (`voice_response_ms`, p50 and p90), the furthest behind real time the listener read
(`lag_ms`, from its events), and how many streams failed (a listener taken for dead).

    .venv-app/bin/python -m bench.listen_load [--turns 4] [--hogs 0,2] [--people 1,4]

It prints one JSON line at the end. Run it on a machine doing nothing else: the hog is the load.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from queues import QueueSettings

from .procs import private_redis, process
from .stream import QUESTIONS, ROOT, Speaker, figures, serve, speak


async def case(url: str, questions: list[bytes], people: int, turns: int) -> dict:
    speakers = [Speaker(url) for _ in range(people)]
    runs = [s.run([questions[(i + k) % len(questions)] for i in range(turns)], 1.0) for k, s in enumerate(speakers)]
    got = await asyncio.gather(*runs, return_exceptions=True)
    done = [t for r in got if not isinstance(r, BaseException) for t in r]
    broken = [repr(r) for r in got if isinstance(r, BaseException)]
    out: dict = {"people": people, "lag_ms": max(s.max_lag_ms for s in speakers)}
    out["failed_streams"] = sum(
        bool(s.failures) or isinstance(r, BaseException) for s, r in zip(speakers, got, strict=True)
    )
    try:
        f = figures(done)
        out |= {k: round(f[k]) for k in ("voice_response_ms", "voice_response_p90_ms", "endpoint_ms")} | {
            "turns": f["turns"]
        }
    except (RuntimeError, statistics.StatisticsError) as exc:  # turns lost, or none at all
        out["error"] = str(exc)
    if broken:
        out["errors"] = broken
    return out


async def run(args: argparse.Namespace, url: str) -> list[dict]:
    env = {**os.environ, "COUNCIL_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    settings = QueueSettings.from_env(env)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-listen-load-worker.log"
    worker = [args.worker_python, "-m", "voice_worker", "--log-level", "WARNING"]
    results = []
    with process(worker, env, ready="worker ready", log=log), tempfile.TemporaryDirectory() as folder:
        questions = [speak(q, args.worker_python, Path(folder)) for q in QUESTIONS]
        url_ws, server, thread = serve(settings)
        try:
            await Speaker(url_ws).run([questions[0]], 1.0)  # warm up
            for hog in [int(h) for h in args.hogs.split(",")]:
                hogs = None
                if hog:
                    if shutil.which("stress-ng") is None:
                        raise SystemExit("stress-ng is not installed: scripts/system-deps.sh test")
                    hogs = subprocess.Popen(["stress-ng", "--cpu", str(hog), "--quiet"])
                try:
                    for people in [int(p) for p in args.people.split(",")]:
                        result = await case(url_ws, questions, people, args.turns) | {"cpu_hog": hog}
                        print(json.dumps(result), flush=True)
                        results.append(result)
                finally:
                    if hogs is not None:
                        hogs.terminate()
                        hogs.wait(10)
        finally:
            server.should_exit = True
            thread.join(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=4, help="questions per person and case")
    parser.add_argument("--hogs", default="0,2", help="stress-ng CPU workers beside the worker, per case")
    parser.add_argument("--people", default="1,4", help="people speaking at once, per case")
    parser.add_argument("--worker-python", default=str(ROOT / ".venv-worker/bin/python"))
    args = parser.parse_args()
    with private_redis() as url:
        results = asyncio.run(run(args, url))
    print(json.dumps({"listen_load": results}))


if __name__ == "__main__":
    main()
