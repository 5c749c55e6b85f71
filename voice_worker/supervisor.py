"""The supervisor: `python -m voice_worker` runs the worker as its child and keeps it serving.

It restarts a child that dies (with backoff; not one that refused to start for its settings or
models, nor one that stopped cleanly), and kills a child that is stuck: a job still running past
its time limit plus a grace (RQ's SIGALRM cannot interrupt native code such as a CUDA call or a
C loop), or an idle child whose heartbeat stopped. A stuck job is marked in Redis, so whoever
settles it (the next child, or a peer) fails it with a message instead of running it again.

Each child gets its own worker name (RQ refuses a name whose registration is still alive) and
adopts its predecessor's in-flight list at start. The child dies with the supervisor
(PR_SET_PDEATHSIG), so killing the supervisor kills the whole worker.
"""

import logging
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import redis

from .inflight import Keys
from .outage import REDIS_DOWN_OR_FULL
from .settings import WorkerSettings

log = logging.getLogger(__name__)

CANNOT_START = 2  # the child's exit code when its settings or models are wrong: restarting won't help


@dataclass
class ChildState:
    last_beat: float | None = None
    job_id: str | None = None
    deadline: float = 0.0
    timeout_s: float = 0.0


class Supervisor:
    def __init__(self, settings: WorkerSettings, child_args: list[str]) -> None:
        self.settings = settings
        self.child_args = child_args
        self.base_name = settings.name or uuid.uuid4().hex[:12]
        self.child: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        previous: str | None = None
        backoff_s = 1.0
        for incarnation in range(1, 1_000_000):
            name = f"{self.base_name}-{incarnation}"
            started = time.monotonic()
            code, why = self._run_child(name, previous)
            if self._stopping or code == 0:
                return 0 if self._stopping else code
            if code == CANNOT_START and why == "exited":
                return code
            previous = name
            backoff_s = 1.0 if time.monotonic() - started > 60 else min(backoff_s * 2, 30.0)
            log.error("worker %s %s (exit %s); starting a new one in %.0f s", name, why, code, backoff_s)
            if self._sleep(backoff_s):  # (a signal handler sets _stopping: mypy cannot see it change)
                return 0
        return 1

    def _run_child(self, name: str, adopt: str | None) -> tuple[int, str]:
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "WORKER_NAME": name, "WORKER_REPORT_FD": str(write_fd), "WORKER_ADOPT": adopt or ""}
        command = [sys.executable, "-m", "voice_worker", "--child", *self.child_args]
        # In its own process group: a Ctrl-C (to the terminal's group) reaches the supervisor
        # only, which asks the child to stop (SIGTERM), whatever the child is doing then (its
        # imports, its models loading: SIGTERM ends those silently; once serving, RQ's warm shutdown).
        self.child = subprocess.Popen(command, env=env, pass_fds=(write_fd,), process_group=0)
        os.close(write_fd)
        state = ChildState()
        buffer = b""
        try:
            while True:
                readable, _, _ = select.select([read_fd], [], [], 0.5)
                if readable:
                    chunk = os.read(read_fd, 4096)
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        self._heard(state, line.decode(errors="replace"))
                code = self.child.poll()
                if code is not None:
                    return code, "exited"
                stuck = self._stuck(state)
                if stuck is not None:
                    log.error("worker %s is stuck (%s): killing it", name, stuck)
                    if state.job_id is not None and time.time() > state.deadline:
                        self._mark_hung(state)
                    self.child.kill()
                    return self.child.wait(), f"was stuck ({stuck})"
        finally:
            os.close(read_fd)

    def _heard(self, state: ChildState, line: str) -> None:
        state.last_beat = time.monotonic()
        words = line.split()
        if words[:1] == ["job"] and len(words) == 4:
            state.job_id, state.deadline, state.timeout_s = words[1], float(words[2]), float(words[3])
        elif words[:1] == ["idle"]:
            state.job_id = None

    def _stuck(self, state: ChildState) -> str | None:
        if state.job_id is not None:
            over = time.time() - state.deadline
            if over > self.settings.hang_grace_s:
                return f"job {state.job_id} still running {over:.0f} s after its {state.timeout_s:.0f} s limit"
            return None
        if state.last_beat is not None and time.monotonic() - state.last_beat > self.settings.stall_s:
            return f"no heartbeat for {time.monotonic() - state.last_beat:.0f} s while idle"
        return None

    def _mark_hung(self, state: ChildState) -> None:
        assert state.job_id is not None
        message = (
            f"The job ran past its {state.timeout_s:.0f} s time limit and could not be stopped (stuck inside the "
            "voice engine), so its worker was restarted. Try shorter input; if it happens again, tell the operator."
        )
        try:
            connection = self.settings.queues.connect()
            connection.set(Keys.of(self.settings.queues).hung(state.job_id), message, ex=24 * 3600)
            connection.close()
        except REDIS_DOWN_OR_FULL + (redis.exceptions.RedisError,):
            log.exception("could not mark job %s as stuck", state.job_id)

    def _on_term(self, signum: int, frame: object) -> None:  # (and Ctrl-C)
        self._stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)  # a warm shutdown: the child ends its job first

    def _sleep(self, seconds: float) -> bool:
        """Sleep `seconds`, less if asked to stop meanwhile; whether asked to stop."""
        end = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < end:
            time.sleep(0.1)
        return self._stopping


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (the supervisor) dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
