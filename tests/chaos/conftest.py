"""Workers and Redis servers a chaos test starts and kills itself: crash, hang and restart tests."""

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from queues import QueueSettings


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the supervisor; its child dies with it (PR_SET_PDEATHSIG): the whole worker."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def child_pid(self) -> int:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        assert out, f"worker {self.proc.pid} has no child"
        return int(out[0])

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Pool:
    """Workers of one test on queues and keys of their own (other tests' workers never take its jobs)."""

    redis_url: str
    tmp: Path
    env: dict[str, str]
    launcher: Any  # tests/conftest.py's Workers
    workers: list[Worker] = field(default_factory=list)

    @property
    def settings(self) -> QueueSettings:
        return QueueSettings.from_env(self.env)

    def use_redis(self, url: str) -> None:
        self.redis_url = self.env["COUNCIL_REDIS_URL"] = url

    def start(self, wait: bool = True, **extra: str) -> Worker:
        log = self.tmp / f"worker-{len(self.workers)}-{uuid.uuid4().hex[:4]}.log"
        worker = Worker(self.launcher.start(log, {**self.env, **extra}, wait=wait), log)
        self.workers.append(worker)
        return worker

    def wait_ready(self, worker: Worker, count: int = 1) -> None:
        self.launcher.wait_ready(worker.proc, worker.log, count)

    def stop(self) -> None:
        for worker in self.workers:
            self.launcher.stop(worker.proc)


@pytest.fixture
def pool(redis_url: str, own_env: dict[str, str], tmp_path: Path, workers: Any) -> Iterator[Pool]:
    env = {
        **os.environ,
        **own_env,
        "WORKER_THREADS": "1",
    }
    pool = Pool(redis_url, tmp_path, env, workers)
    yield pool
    pool.stop()
