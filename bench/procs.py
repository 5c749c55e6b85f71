"""What every benchmark starts and counts: processes it owns, a Redis of its own, percentiles.

Only the standard library and redis-py, so that both interpreters import it: the app's for
`make bench` and `make load`, the worker's for bench/gpu.
"""

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def process(
    args: list[str], env: dict[str, str], ready: str | None = None, log: Path | None = None, wait_s: float = 120
) -> Iterator[subprocess.Popen]:
    """`args` running for the block, its output in `log`; with `ready`, once the log says it."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        if ready and log:
            deadline = time.monotonic() + wait_s
            while ready.encode() not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[0]} did not start:\n{log.read_text(errors='replace')[-4000:]}")
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


@contextmanager
def private_redis(server: str = "redis-server") -> Iterator[str]:
    """A redis-server of the benchmark's own on a free port: it never touches anyone's data. A
    `lib/` beside the binary (bench/gpu/wheels.sh carries one) holds the libraries it links."""
    port = free_port()
    env = dict(os.environ)
    if (Path(server).parent / "lib").is_dir():
        libs = [str(Path(server).parent / "lib"), env.get("LD_LIBRARY_PATH")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, libs))
    with tempfile.TemporaryDirectory(prefix="council-bench-redis-") as workdir:
        log = Path(workdir) / "redis.log"
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", workdir]
        with process(args, env, log=log) as proc:
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis.from_url(url).ping()
                    break
                except redis.exceptions.ConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        said = log.read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"{server} did not start: {said}") from None
                    time.sleep(0.05)
            yield url
