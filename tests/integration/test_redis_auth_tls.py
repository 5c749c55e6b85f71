"""A Redis with a password, and one that speaks only TLS and asks clients for a certificate: a real
voice worker and the app's client run a job through each, and wrong settings stop them at start
with a message that says what to fix (and never shows the password)."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from queues import EventHub, JobClient, QueueSettings, SettingsError
from shared_schemas import EventType, PingJob
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen


def start_redis(args: list[str], url: str, workdir: Path, **client: str) -> Server:
    log = workdir / "redis.log"
    argv = ["redis-server", *args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            if redis.Redis.from_url(url, socket_connect_timeout=0.5, **client).ping():
                return Server(url, proc)
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                pytest.fail(f"redis-server {' '.join(args)} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory) -> Iterator[Server]:
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    server = start_redis(["--port", str(port), "--requirepass", PASSWORD], url, tmp_path_factory.mktemp("pw"))
    yield server
    stop(server.proc)


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    """A CA, and a server and a client certificate it signed, made with the openssl CLI (with the
    extensions Python 3.13's strict verification asks for)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is not installed (Debian: apt-get install openssl)")
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Council test CA",
            "-keyout", d / "ca.key", "-out", d / "ca.crt", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for who, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                "-keyout", d / f"{who}.key", "-out", d / f"{who}.csr")  # fmt: skip
        (d / f"{who}.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
            f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
            "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
        )
        openssl("x509", "-req", "-in", d / f"{who}.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", d / f"{who}.ext", "-out", d / f"{who}.crt")  # fmt: skip
    return Certs(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory, certs: Certs) -> Iterator[Server]:
    """TLS only (no plain port), and clients must show a certificate the CA signed."""
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "yes", "--tls-ca-cert-file", str(certs.ca)]
    args += ["--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key)]
    files = {"ssl_ca_certs": str(certs.ca), "ssl_certfile": str(certs.client_cert)}
    files["ssl_keyfile"] = str(certs.client_key)
    server = start_redis(args, f"rediss://127.0.0.1:{port}/0", tmp_path_factory.mktemp("tls"), **files)
    yield server
    stop(server.proc)


def ping(settings: QueueSettings) -> list[EventType]:
    """A ping job through the app's client: enqueued, run by the worker, its event heard."""

    async def go() -> list[EventType]:
        connection = settings.connect_async()
        hub = EventHub(settings, connection)
        await hub.start()
        try:
            session = f"auth-{uuid.uuid4().hex[:8]}"
            client = JobClient(settings, aconnection=connection)
            events = [e async for e in client.arun(hub, PingJob(session_id=session, job_id=f"{session}-ping"))]
            client.connection.close()
            return [e.type for e in events]
        finally:
            await hub.close()
            await connection.aclose()

    return asyncio.run(go())


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_job_through(settings: QueueSettings, workers, log: Path, env: dict[str, str], *also: QueueSettings) -> None:
    """A worker started with `env` runs a ping job from the app's client with `settings` (and each
    of `also`), and the app's health check sees the worker."""
    settings.check_credentials()
    worker = workers.start(log, {"COUNCIL_RETRIES": "1", **env}, "--no-engines", wait=False)
    workers.wait_ready(worker, log, timeout_s=90)
    try:
        for client_settings in (settings, *also):
            assert ping(client_settings) == [EventType.PONG]
        # The app too: its health check sees the worker through the same Redis.
        with TestClient(create_app(AppSettings(queues=settings, responder="echo"))) as app:
            health = app.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["queues"]["realtime"]["workers"] == 1
    finally:
        workers.stop(worker)


def test_a_job_runs_through_a_redis_with_a_password(password_redis, workers, tmp_path):
    settings = QueueSettings(redis_url=password_redis.url)
    # The password in its own variable, the URL without it, works the same.
    apart = QueueSettings.from_env(
        {"COUNCIL_REDIS_URL": password_redis.url.replace(f":{PASSWORD}@", ""), "COUNCIL_REDIS_PASSWORD": PASSWORD}
    )
    env = {"COUNCIL_REDIS_URL": password_redis.url}
    run_job_through(settings, workers, tmp_path / "worker.log", env, apart)


def test_a_job_runs_through_redis_over_tls_with_client_certificates(tls_redis, certs, workers, tmp_path):
    # The worker takes the TLS files from the environment, the app's client from the URL.
    env = {
        "COUNCIL_REDIS_URL": tls_redis.url,
        "COUNCIL_REDIS_SSL_CA_CERTS": str(certs.ca),
        "COUNCIL_REDIS_SSL_CERTFILE": str(certs.client_cert),
        "COUNCIL_REDIS_SSL_KEYFILE": str(certs.client_key),
    }
    url = f"{tls_redis.url}?ssl_ca_certs={certs.ca}&ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
    settings = QueueSettings.from_env({"COUNCIL_REDIS_URL": url})
    run_job_through(settings, workers, tmp_path / "worker.log", env)


def refused(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        argv, cwd=ROOT, env={**os.environ, "COUNCIL_RETRIES": "1", **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0, done.stdout + done.stderr
    return done


def test_a_wrong_password_stops_the_worker_the_app_and_the_cli_saying_so(password_redis, worker_python):
    wrong = password_redis.url.replace(PASSWORD, "wrong-password")
    with pytest.raises(SettingsError, match="refused the credentials") as error:
        QueueSettings(redis_url=wrong).check_credentials()
    assert "wrong-password" not in str(error.value) and "COUNCIL_REDIS_URL" in str(error.value)
    with pytest.raises(SettingsError, match="refused the credentials"):
        QueueSettings(redis_url=password_redis.url.replace(f":{PASSWORD}@", "")).check_credentials()
    env = {"COUNCIL_REDIS_URL": wrong}
    worker = refused([worker_python, "-m", "voice_worker", "--no-engines"], env)
    assert worker.returncode == 2  # CANNOT_START: the supervisor does not restart it
    app = refused([sys.executable, "-m", "web", "--port", str(free_port())], env)
    cli = refused([sys.executable, "-m", "queues", "speak", "Hello.", "--out", "/tmp/never-written.wav"], env)
    for done in (worker, app, cli):
        assert "cannot start" in done.stderr or "error:" in done.stderr
        assert "refused the credentials" in done.stderr and "COUNCIL_REDIS_PASSWORD" in done.stderr
        assert "wrong-password" not in done.stderr and "Traceback" not in done.stderr


def test_tls_without_the_ca_or_the_client_certificate_is_refused_saying_which(tls_redis, certs, worker_python):
    with pytest.raises(SettingsError, match="TLS handshake") as no_ca:
        QueueSettings(redis_url=tls_redis.url).check_credentials()
    assert "CERTIFICATE_VERIFY_FAILED" in str(no_ca.value) and "COUNCIL_REDIS_SSL_CA_CERTS" in str(no_ca.value)
    with pytest.raises(SettingsError, match="TLS handshake") as no_cert:
        QueueSettings(redis_url=tls_redis.url, redis_ssl_ca_certs=str(certs.ca)).check_credentials()
    assert "COUNCIL_REDIS_SSL_CERTFILE" in str(no_cert.value)
    worker = refused([worker_python, "-m", "voice_worker", "--no-engines"], {"COUNCIL_REDIS_URL": tls_redis.url})
    assert worker.returncode == 2 and "TLS handshake" in worker.stderr


def test_a_ca_without_key_usage_is_refused_with_how_to_make_it_again(tmp_path):
    """openssl's default `req -x509` CA has no keyUsage; Python 3.11 took it, 3.13 (the app) does not."""
    openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Plain CA",
            "-keyout", tmp_path / "ca.key", "-out", tmp_path / "ca.crt")  # fmt: skip
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server",
            "-keyout", tmp_path / "s.key", "-out", tmp_path / "s.csr")  # fmt: skip
    (tmp_path / "s.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", tmp_path / "s.csr", "-CA", tmp_path / "ca.crt", "-CAkey", tmp_path / "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", tmp_path / "s.ext", "-out", tmp_path / "s.crt")  # fmt: skip
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
    args += ["--tls-cert-file", str(tmp_path / "s.crt"), "--tls-key-file", str(tmp_path / "s.key")]
    url = f"rediss://127.0.0.1:{port}/0"
    server = start_redis(args, url, tmp_path, ssl_cert_reqs="none")
    try:
        settings = QueueSettings(redis_url=url, redis_ssl_ca_certs=str(tmp_path / "ca.crt"))
        with pytest.raises(SettingsError, match="key usage") as refused_ca:
            settings.check_credentials()
        assert "keyUsage=critical,keyCertSign,cRLSign" in str(refused_ca.value)
    finally:
        stop(server.proc)
