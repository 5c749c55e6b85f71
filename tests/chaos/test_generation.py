"""A worker SIGKILLed while it writes an answer: the generation fails `worker_lost`, as data, on its
reply_to stream, and is not written again (its tokens already went out). A real LLM-only worker
(the built-in SmolLM2, loaded twice: the child and the one its supervisor starts after the kill)."""

import os
import signal
import time
import uuid
from collections import Counter

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import JobClient, replay
from shared_schemas import ChatMessage, ErrorCode, EventType, GenerationJob

pytestmark = pytest.mark.slow


def events_until(conn, settings, stream: str, done, timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = replay(conn, settings, stream)
        if done(events):
            return events
        time.sleep(0.05)
    seen = Counter(str(e.type) for e in replay(conn, settings, stream))
    pytest.fail(f"{stream}: not there in {timeout_s} s; it holds {dict(seen)}")


@pytest.mark.timeout(420)
def test_a_worker_killed_mid_generation_fails_the_job_worker_lost(pool):
    worker = pool.start(WORKER_QUEUES=pool.settings.llm_queue)
    settings, conn = pool.settings, redis.Redis.from_url(pool.redis_url)
    session = f"gen-{uuid.uuid4().hex[:8]}"
    messages = [ChatMessage(role="user", content="Write a long story about a dragon, in ten chapters.")]
    payload = GenerationJob(
        session_id=session, job_id=f"{session}-1", messages=messages, max_tokens=2000, reply_to=f"llm-{session}-1"
    )
    JobClient(settings, conn).enqueue(payload)
    events_until(conn, settings, payload.stream, lambda events: len(events) >= 3, 120)
    os.kill(worker.child_pid(), signal.SIGKILL)
    events = events_until(conn, settings, payload.stream, lambda events: any(e.terminal for e in events), 150)
    *tokens, end = events
    assert all(e.type is EventType.TOKEN for e in tokens) and len(tokens) >= 2
    assert end.type is EventType.FAILED and end.payload.code == ErrorCode.WORKER_LOST, end.payload
    assert "Ask again" in end.payload.message
    job = Job.fetch(payload.job_id, connection=conn, serializer=JSONSerializer)
    assert job.get_status() == "failed"
    assert replay(conn, settings, session) == []
    time.sleep(1)  # nothing more comes: not run again
    assert len(replay(conn, settings, payload.stream)) == len(events)
