"""`make bench` (python -m bench.run) as a person runs it: what it needs is checked before
anything starts, one line each with the fix; it says what it is doing; Ctrl-C ends it with one
line, no traceback, everything it started stopped."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def bench(args: list[str], path: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if path is not None:
        env["PATH"] = path
    return subprocess.Popen(
        [sys.executable, "-m", "bench.run", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_what_is_missing_is_said_first_one_line_each(tmp_path):
    for program in ("redis-server", "espeak-ng", "ffmpeg"):  # all it needs but flite
        found = shutil.which(program)
        assert found, program
        (tmp_path / program).symlink_to(found)
    proc = bench(["--worker-python", str(tmp_path / "no-python")], path=str(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == "", err
    assert err.splitlines() == [
        "make bench: flite is not installed (the spoken test clips: apt-get install flite "
        "(scripts/system-deps.sh test installs it))",
        f"make bench: the worker's Python {tmp_path / 'no-python'} is missing: build the environments with "
        "`make venvs`",
    ]


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_stops_what_it_started():
    proc = bench(["-n", "200000", "--warmup", "10"])  # long enough to be interrupted in its first part
    assert proc.stderr is not None
    said: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        said.append(line)
        if "no-op jobs one by one" in line or not line:
            break
    assert any("bench: starting a voice worker" in line for line in said), said
    assert any("done in" in line for line in said), said  # the worker's start, timed
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        "make bench: interrupted; the processes and the Redis it started are stopped"
    ), err
    # The worker's supervised child ends just after its supervisor: give the group a moment.
    deadline = time.monotonic() + 15
    while (left := subprocess.run(["pgrep", "-a", "-g", str(proc.pid)], capture_output=True, text=True)).stdout:
        if time.monotonic() > deadline:
            raise AssertionError(f"still running in its process group: {left.stdout}")
        time.sleep(0.2)
