"""`make run` (scripts/run.sh) as a person runs it: what stops it is found before anything starts
and said in one line (a busy port, a bad setting); Ctrl-C stops everything it started and says
what happens to Redis. Real processes: the script, its Redis, its workers and app."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["scripts/run.sh"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_busy_port_is_refused_before_anything_starts(redis_url):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        redis_port = free_port()  # nothing there: a Redis would be started if the check came later
        proc = run_script({"COUNCIL_PORT": str(port), "COUNCIL_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"})
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert f"Port {port} on 127.0.0.1 is in use" in out and f"COUNCIL_PORT={port + 1} make run" in out, out
    assert "Starting redis-server" not in out and "Council is running" not in out and "Traceback" not in out
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(port=redis_port, socket_connect_timeout=1).ping()


def test_a_bad_setting_is_one_line_naming_the_variable(redis_url):
    proc = run_script({"COUNCIL_PORT": str(free_port()), "COUNCIL_BUDGET_DAILY": "lots"})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out.strip().count("\n") == 0, out
    assert out.startswith("web: cannot start: COUNCIL_BUDGET_DAILY must be") and "got 'lots'" in out


def run_until_up_then_ctrl_c(env: dict[str, str]) -> str:
    """Start the script, wait for its banner ("Council is running" ... "From a terminal"), press
    Ctrl-C; everything it said. The workers may still be loading their modules and models then:
    a Ctrl-C at any moment is a stop, never a traceback."""
    proc = run_script({"COUNCIL_RESPONDER": "echo", "REALTIME_WORKERS": "0", **env})
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "From a terminal" in line or not line:
            break
    assert any("Council is running" in line for line in lines), "".join(lines)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    out, _ = proc.communicate(timeout=60)
    said = "".join(lines) + out
    assert proc.returncode == 130 and out.rstrip().endswith("Stopped."), said
    assert "Traceback" not in said, said
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(env["COUNCIL_PORT"])), timeout=1).close()
    return out


@pytest.mark.slow
def test_ctrl_c_stops_everything_and_says_redis_is_left_running(redis_url):
    out = run_until_up_then_ctrl_c({"COUNCIL_PORT": str(free_port()), "COUNCIL_REDIS_URL": redis_url})
    assert "was running before: left running." in out, out
    redis.Redis.from_url(redis_url).ping()  # the tests' Redis, still up


@pytest.mark.slow
def test_ctrl_c_stops_the_redis_it_started(tmp_path):
    redis_port = free_port()
    env = {"COUNCIL_PORT": str(free_port()), "COUNCIL_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    out = run_until_up_then_ctrl_c({**env, "TMPDIR": str(tmp_path)})
    assert f"Stopped the Redis started on 127.0.0.1:{redis_port}" in out, out
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(port=redis_port, socket_connect_timeout=1).ping()
