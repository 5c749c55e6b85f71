"""A Redis at its memory cap (noeviction) under a working worker: the worker neither crashes nor
fails the job it holds; it waits, and the job ends well once Redis has room again."""

import time
import uuid

import pytest
import redis

from queues import JobClient, replay
from shared_schemas import EventType, SynthesisJob

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_full_redis_makes_the_worker_wait_not_crash(pool, own_redis):
    pool.use_redis(own_redis.url)
    worker = pool.start()
    conn = redis.Redis.from_url(own_redis.url)
    conn.config_set("maxmemory-policy", "noeviction")
    settings = pool.settings
    session = f"full-{uuid.uuid4().hex[:8]}"
    child = worker.child_pid()
    job = SynthesisJob(session_id=session, job_id=f"{session}-say", text="Room at last.", voice="max")
    conn.config_set("maxmemory", max(1, conn.info("memory")["used_memory"] + 200_000))
    JobClient(settings, conn).enqueue(job)
    conn.config_set("maxmemory", max(1, conn.info("memory")["used_memory"] - 4096))  # full now
    time.sleep(6)
    assert worker.proc.poll() is None and worker.child_pid() == child, worker.output()[-2000:]
    assert "Traceback" not in worker.output(), worker.output()[-3000:]
    conn.config_set("maxmemory", 0)
    deadline = time.monotonic() + 60
    while not (ended := [e for e in replay(conn, settings, session) if e.terminal]):
        assert time.monotonic() < deadline, worker.output()[-3000:]
        time.sleep(0.2)
    assert ended[0].type is EventType.AUDIO, ended[0].payload
