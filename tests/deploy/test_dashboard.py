"""`make dashboard` (scripts/dashboard.py): rq-dashboard against a real Redis, with basic auth when
a password is set, showing Council's JSON jobs (which it cannot read without --json)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from queues import JobClient, QueueSettings
from shared_schemas import PingJob

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "dashboard.py"
PASSWORD = "dashboard-s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_up(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"rq-dashboard did not start:\n{proc.communicate()[0]}")
            time.sleep(0.2)


def test_the_dashboard_shows_our_json_jobs_behind_basic_auth(own_redis):
    settings = QueueSettings(redis_url=own_redis.url)
    job = PingJob(session_id="dashboard-test", job_id="dashboard-test-ping")
    JobClient(settings).enqueue(job, settings.batch_queue)  # no worker here: it stays queued
    port = free_port()
    env = {"COUNCIL_REDIS_URL": own_redis.url, "DASHBOARD_PORT": str(port), "RQ_DASHBOARD_PASSWORD": PASSWORD}
    proc = start(env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, url)
        assert httpx.get(url).status_code == 401
        auth = ("admin", PASSWORD)
        page = httpx.get(f"{url}/", auth=auth)
        assert page.status_code == 200 and "<title>RQ dashboard</title>" in page.text
        queues = httpx.get(f"{url}/0/data/queues.json", auth=auth).json()
        assert {"name": "batch", "count": 1} in [{k: q[k] for k in ("name", "count")} for q in queues["queues"]]
        info = httpx.get(f"{url}/0/data/job/{job.job_id}.json", auth=auth)
        assert info.status_code == 200, info.text  # a JSON job, read with --json
        assert info.json()["status"] == "queued" and info.json()["origin"] == "batch"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert f"on http://127.0.0.1:{port}/, user admin" in out
    assert PASSWORD not in out


def test_no_password_beyond_loopback_is_refused(own_redis):
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**os.environ, "COUNCIL_REDIS_URL": own_redis.url, "DASHBOARD_BIND": "0.0.0.0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "RQ_DASHBOARD_PASSWORD" in done.stderr
