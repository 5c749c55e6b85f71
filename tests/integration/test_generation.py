"""Generation from the app's interpreter (3.13) on a real LLM-only worker (3.11, WORKER_QUEUES=llm,
the built-in SmolLM2 loaded once for this module), through Redis: enqueued by name as JSON."""

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from queues import EventHub, JobClient, QueueSettings, functions, replay
from shared_schemas import ChatMessage, EventType, GenerationJob


@pytest.fixture(scope="module")
def llm_queues(settings: QueueSettings, workers, tmp_path_factory) -> Iterator[QueueSettings]:
    """Queues and keys of this module's own, served by one worker that loads only the language model."""
    tag = uuid.uuid4().hex[:8]
    names = {f"{kind}_queue": f"{kind}-{tag}" for kind in ("speech", "realtime", "batch", "listen", "llm")}
    own = settings.model_copy(update={**names, "key_prefix": f"council-{tag}"})
    env = {
        "COUNCIL_REDIS_URL": own.redis_url,
        "COUNCIL_KEY_PREFIX": own.key_prefix,
        **{f"COUNCIL_{field.upper()}": name for field, name in names.items()},
        "WORKER_QUEUES": own.llm_queue,
        "WORKER_THREADS": "1",
    }
    log = tmp_path_factory.mktemp("llm-worker") / "worker.log"
    proc = workers.start(log, env)
    yield own
    workers.stop(proc)
    text = log.read_text(errors="replace")
    assert "llms=['builtin']" in text and "stt=None" in text, text[-2000:]


def ask(n: int, question: str, system: str | None = None, **fields) -> GenerationJob:
    session = f"gen-{uuid.uuid4().hex[:8]}"
    job_id = f"{session}-{n}"
    messages = [ChatMessage(role="system", content=system)] if system else []
    messages.append(ChatMessage(role="user", content=question))
    return GenerationJob(session_id=session, job_id=job_id, messages=messages, reply_to=f"llm-{job_id}", **fields)


async def collect(settings: QueueSettings, payload: GenerationJob, timeout: float = 120.0) -> list:
    conn = settings.connect_async()
    hub = EventHub(settings, conn)
    await hub.start()
    try:
        return [e async for e in JobClient(settings, aconnection=conn).arun(hub, payload, timeout=timeout)]
    finally:
        await hub.close()
        await conn.aclose()


def test_tokens_then_generated_arrive_on_reply_to(llm_queues: QueueSettings):
    payload = ask(1, "What is the capital of France?", "Answer in one short sentence.", member="ada", max_tokens=40)
    events = asyncio.run(collect(llm_queues, payload))
    *tokens, end = events
    assert tokens and all(e.type is EventType.TOKEN and e.payload.member == "ada" for e in tokens)
    assert end.type is EventType.GENERATED and end.terminal
    assert [e.seq for e in events] == list(range(len(events)))
    assert "".join(e.payload.text for e in tokens) == end.payload.text
    assert "Paris" in end.payload.text
    assert end.payload.finish_reason in ("stop", "length") and 0 < end.payload.output_tokens <= 40
    assert end.payload.input_tokens > 10 and end.payload.first_token_ms > 0
    assert (end.payload.model, end.payload.engine) == ("builtin", "transformers")
    conn = redis.Redis.from_url(llm_queues.redis_url)
    assert replay(conn, llm_queues, payload.session_id) == []  # the page's own stream carries no raw tokens
    assert [e.id for e in replay(conn, llm_queues, payload.stream)] == [e.id for e in events]


def test_a_bad_payload_enqueued_by_name_fails_invalid_payload(llm_queues: QueueSettings):
    conn = redis.Redis.from_url(llm_queues.redis_url)
    session = f"bad-{uuid.uuid4().hex[:8]}"
    bad = {"kind": "generation", "session_id": session, "job_id": f"{session}-1", "messages": [], "max_tokens": 0}
    queue = Queue(llm_queues.llm_queue, connection=conn, serializer=JSONSerializer)
    queue.enqueue(functions.GENERATE, bad, job_id=bad["job_id"], meta={"session_id": session})
    conn.rpush(llm_queues.wake_key(llm_queues.llm_queue), 1)
    events = wait_for_end(conn, llm_queues, session)
    (failed,) = events
    assert failed.type is EventType.FAILED and failed.payload.code == "invalid_payload"
    assert "messages" in failed.payload.message and "max_tokens" in failed.payload.message


def test_a_stop_ends_a_running_generation_cancelled(llm_queues: QueueSettings):
    conn = redis.Redis.from_url(llm_queues.redis_url)
    client = JobClient(llm_queues, conn)
    payload = ask(2, "Write a long story about a dragon and a knight, in ten chapters.", max_tokens=1000)
    client.enqueue(payload)
    began = wait_for_end(conn, llm_queues, payload.stream, until=lambda events: len(events) >= 2)
    assert client.stop(payload.job_id) == "stopping", [e.payload for e in began]
    *tokens, end = wait_for_end(conn, llm_queues, payload.stream)
    assert end.type is EventType.GENERATED and end.payload.finish_reason == "cancelled"
    assert len(tokens) <= end.payload.output_tokens < 1000
    assert "".join(e.payload.text for e in tokens) == end.payload.text


def wait_for_end(conn, settings, stream, until=None, timeout_s: float = 120.0) -> list:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = replay(conn, settings, stream)
        if until(events) if until else any(e.terminal for e in events):
            return events
        time.sleep(0.05)
    pytest.fail(f"nothing ended on {stream}")
