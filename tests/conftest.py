"""Fixtures both interpreters share: a real Redis (started if none answers), settings, ids."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from queues import QueueSettings

ROOT = Path(__file__).resolve().parent.parent
TEST_DB = 13
WORKER_PYTHON = os.environ.get("WORKER_PYTHON", str(ROOT / ".venv-worker/bin/python"))


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis of this test run's own: a redis-server started on a free port, so that runs (and
    people) sharing a machine never take each other's jobs. COUNCIL_TEST_REDIS_URL overrides it."""
    url = os.environ.get("COUNCIL_TEST_REDIS_URL")
    if url:
        if not _answers(url):
            pytest.exit(f"COUNCIL_TEST_REDIS_URL={url} does not answer", returncode=3)
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.exit("redis-server is not installed (Debian: apt-get install redis-server)", returncode=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="council-redis-")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/{TEST_DB}"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.exit("redis-server did not start", returncode=3)
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(redis_url: str) -> QueueSettings:
    return QueueSettings(redis_url=redis_url, retries=1)


@pytest.fixture
def connection(settings: QueueSettings) -> Iterator[redis.Redis]:
    conn = settings.connect()
    yield conn
    conn.close()


@pytest.fixture
def session_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, "COUNCIL_REDIS_URL": redis_url, "COUNCIL_RETRIES": "1", "WORKER_THREADS": "2"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [WORKER_PYTHON, "-m", "voice_worker"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while b"worker ready" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the voice worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    yield proc
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def worker_python() -> str:
    return WORKER_PYTHON


@pytest.fixture
def flite(tmp_path: Path):
    """Speak a sentence with flite into WAV bytes: clean input for speech recognition."""

    def speak(text: str, voice: str = "slt") -> bytes:
        path = tmp_path / f"flite-{abs(hash((text, voice)))}.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
        return path.read_bytes()

    return speak
