"""A worker's heartbeat: a thread that keeps its `alive` key fresh, tells its supervisor it is
responsive, and adopts the in-flight jobs of workers that died (see `inflight.py`).

It runs beside the jobs, on its own Redis connection. A job stuck in native code that holds the
GIL stops it too: then the supervisor, which is another process, notices (see `supervisor.py`).
"""

import logging
import os
import threading
import time
from typing import TextIO

from .inflight import Inflight
from .outage import REDIS_DOWN_OR_FULL, Outage
from .settings import WorkerSettings

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, settings: WorkerSettings, worker: str, report_fd: int | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.inflight = Inflight(settings.queues, settings.queues.connect(), worker, settings.max_crashes)
        self.outage = Outage(f"heartbeat {worker}")
        self._report_to: TextIO | None = os.fdopen(report_fd, "w", buffering=1) if report_fd is not None else None
        self._report_lock = threading.Lock()
        self._suspects: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.inflight.register(self.settings.alive_ttl_s)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.beat_s * 2)
        try:
            self.inflight.connection.delete(self.inflight.keys.alive(self.worker))
        except REDIS_DOWN_OR_FULL:
            pass

    # -- what the supervisor hears --------------------------------------------------------------

    def job_started(self, job_id: str, timeout_s: float) -> None:
        self._report(f"job {job_id} {time.time() + timeout_s:.3f} {timeout_s:.0f}")

    def job_ended(self) -> None:
        self._report("idle")

    def _report(self, line: str) -> None:
        if self._report_to is None:
            return
        with self._report_lock:
            try:
                self._report_to.write(line + "\n")
            except (BrokenPipeError, ValueError):
                self._report_to = None  # the supervisor is gone; it took care to kill us with it

    # -- the beat -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.settings.beat_s):
            self._report("beat")
            try:
                self.beat()
                self.outage.ok()
            except REDIS_DOWN_OR_FULL as exc:
                self.outage.failed(exc, sleep=False)
            except Exception:
                log.exception("heartbeat failed; trying again")

    def beat(self) -> None:
        ttl_ms = int(self.settings.alive_ttl_s * 1000)
        self.inflight.connection.set(self.inflight.keys.alive(self.worker), "1", px=ttl_ms)
        self.inflight.connection.sadd(self.inflight.keys.workers, self.worker)
        self.reap()

    def reap(self) -> None:
        """Adopt the jobs of workers whose alive key was gone on two beats in a row."""
        others = self.inflight.others()
        self._suspects &= set(others)
        for other in others:
            if self.inflight.alive(other):
                self._suspects.discard(other)
            elif other not in self._suspects:
                self._suspects.add(other)
            else:
                self._suspects.discard(other)
                adopted = self.inflight.adopt(other)
                if adopted:
                    log.warning("worker %s is gone: taking over %d job(s)", other, len(adopted))
                for job_id in adopted:
                    self.inflight.settle(job_id)
