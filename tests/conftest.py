"""Fixtures both interpreters share: a real Redis (started if none answers), settings, ids."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
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
def own(settings: QueueSettings) -> QueueSettings:
    """Settings whose queues and keys no other test uses (a fresh tag), on the test run's Redis."""
    tag = uuid.uuid4().hex[:8]
    names = {f"{kind}_queue": f"{kind}-{tag}" for kind in ("speech", "realtime", "batch", "listen", "llm")}
    return settings.model_copy(update={**names, "key_prefix": f"council-{tag}"})


@pytest.fixture
def own_env(own: QueueSettings) -> dict[str, str]:
    """`own` as the environment a worker or app process reads."""
    return {
        "COUNCIL_REDIS_URL": own.redis_url,
        "COUNCIL_SPEECH_QUEUE": own.speech_queue,
        "COUNCIL_REALTIME_QUEUE": own.realtime_queue,
        "COUNCIL_BATCH_QUEUE": own.batch_queue,
        "COUNCIL_LISTEN_QUEUE": own.listen_queue,
        "COUNCIL_LLM_QUEUE": own.llm_queue,
        "COUNCIL_KEY_PREFIX": own.key_prefix,
    }


@pytest.fixture
def connection(settings: QueueSettings) -> Iterator[redis.Redis]:
    conn = settings.connect()
    yield conn
    conn.close()


@pytest.fixture
def session_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


class Workers:
    """Real voice workers (`python -m voice_worker`: supervisor and child) that tests start, wait
    for and stop; the one way every test starts a worker."""

    @staticmethod
    def start(log: Path, env: Mapping[str, str], *args: str, wait: bool = True) -> subprocess.Popen:
        """A worker with `env` over this environment, its output in `log`; ready, unless not `wait`."""
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [WORKER_PYTHON, "-m", "voice_worker", *args],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait:
            Workers.wait_ready(proc, log)
        return proc

    @staticmethod
    def wait_ready(proc: subprocess.Popen, log: Path, count: int = 1, timeout_s: float = 120) -> None:
        """Until the worker has said "worker ready" `count` times (a restarted child says it again)."""
        deadline = time.monotonic() + timeout_s
        while log.read_bytes().count(b"worker ready") < count:
            if proc.poll() is not None or time.monotonic() > deadline:
                Workers.stop(proc)
                pytest.fail(f"the voice worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL after 15 s."""
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def workers() -> type[Workers]:
    return Workers


@pytest.fixture(scope="session")
def worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = Workers.start(log, {"COUNCIL_REDIS_URL": redis_url, "COUNCIL_RETRIES": "1", "WORKER_THREADS": "2"})
    yield proc
    Workers.stop(proc)


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


@pytest.fixture(scope="session")
def piper_speech(tmp_path_factory: pytest.TempPathFactory):
    """`piper_speech(text)`: WAV bytes (16 kHz mono PCM16) of `text` in Piper's natural voice, made
    by the worker's interpreter (`python -m voice_worker.say`). Smart Turn hears intonation: flite's
    and espeak's flat voices often sound unfinished to it, Piper's sound like a person."""
    folder = tmp_path_factory.mktemp("piper")
    made: dict[str, bytes] = {}

    def speak(text: str) -> bytes:
        if text not in made:
            path = folder / f"{len(made)}.wav"
            say = [WORKER_PYTHON, "-m", "voice_worker.say", text, "--out", str(path), "--rate", "16000"]
            subprocess.run(say, cwd=ROOT, check=True, capture_output=True)
            made[text] = path.read_bytes()
        return made[text]

    return speak


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of one test's own, with its append-only file in `folder`, that the test can
    stop (SIGTERM: it writes its AOF and exits) and start again on the same port and data."""

    def __init__(self, folder: Path, appendfsync: str = "always") -> None:
        self.folder = folder
        self.appendfsync = appendfsync
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return self
            except redis.exceptions.ConnectionError:  # refused, or still loading its AOF
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """`redis_servers(appendfsync="always")`: a started redis-server of the test's own, with AOF."""
    started: list[RedisServer] = []

    def start(appendfsync: str = "always") -> RedisServer:
        started.append(RedisServer(tmp_path / f"redis-{len(started)}", appendfsync).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def own_redis(redis_servers: Callable[..., RedisServer]) -> RedisServer:
    return redis_servers()
