"""Processes the chaos tests start, stop and kill: the app (`python -m web`), a voice worker, and a
redis-server of a test's own with its data on disk."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class AppProcess:
    """`python -m web` on a port of its own, logging JSON lines to `log`."""

    def __init__(self, redis_url: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **os.environ,
            "COUNCIL_REDIS_URL": redis_url,
            "COUNCIL_RESPONDER": "echo",
            "COUNCIL_RETRIES": "1",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> "AppProcess":
        """Start (or start again, on the same port) and wait until it answers HTTP."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "web", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the app did not start:\n{self.log.read_text()[-3000:]}")
            try:
                httpx.get(f"{self.url}/health", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to anyone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def lines(self, text: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if text in line]


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[Callable[..., AppProcess]]:
    """`app_process(redis_url)`: the app as a real process (echo responder), stopped at the end."""
    started: list[AppProcess] = []

    def start(redis_url: str, **env: str) -> AppProcess:
        app = AppProcess(redis_url, tmp_path / f"app-{len(started)}.log", env).start()
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def start_worker(workers, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen]]:
    """`start_worker(redis_url)`: a real voice worker on that Redis, once it says it is ready."""
    started: list[subprocess.Popen] = []

    def start(redis_url: str) -> subprocess.Popen:
        env = {"COUNCIL_REDIS_URL": redis_url, "COUNCIL_RETRIES": "1", "WORKER_THREADS": "2"}
        started.append(workers.start(tmp_path / f"worker-{len(started)}.log", env))
        return started[-1]

    yield start
    for proc in started:
        workers.stop(proc)
