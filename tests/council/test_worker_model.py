"""The worker chat model's side of a generation job, on the real test Redis, queue client and event
hub: what it enqueues, how it reads the job's events, and what it does when the job fails, repeats,
is stopped or no worker serves the queue. Here the test plays the worker at the queue (the job's
events, as the contract says a worker writes them); tests/web/test_builtin_model.py runs the real one."""

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from rq.job import Job
from rq.serializers import JSONSerializer

from council import CouncilFailed, LLMQueue, LLMUnavailable, Payer, WorkerChatModel
from queues import AsyncEventPublisher, EventHub, JobClient, QueueSettings
from shared_schemas import Event, EventType, GenerationJob

PAYER = Payer("ann", "sess-1", "turn-1")
MESSAGES = [SystemMessage("You are Ada."), HumanMessage("Hello?")]


@pytest.fixture
def mine(own: QueueSettings) -> QueueSettings:
    return own.model_copy(update={"llm_queue": f"llm-{own.key_prefix}"})


async def _run(settings: QueueSettings, scenario: Callable, start_wait_s: float = 30.0):
    aconn = redis.asyncio.Redis.from_url(settings.redis_url)
    jobs = JobClient(settings, aconnection=aconn)
    hub = EventHub(settings, aconn)
    await hub.start()
    try:
        model = WorkerChatModel(member="Ada", max_tokens=12, temperature=0.3, queue=LLMQueue(jobs, hub, start_wait_s))
        return await scenario(model, jobs, AsyncEventPublisher(settings, aconn))
    finally:
        await hub.close()
        await aconn.aclose()
        jobs.connection.close()


async def taken(jobs: JobClient, claim: bool = True) -> GenerationJob:
    """The next generation job on the queue, as a worker reads it (`claim`: taken off the queue)."""
    key = f"rq:queue:{jobs.settings.llm_queue}"
    for _ in range(200):
        if ids := await jobs.aconnection.lrange(key, 0, 0):
            if claim:
                await jobs.aconnection.lrem(key, 1, ids[0])
            job = Job.fetch(ids[0].decode(), connection=jobs.connection, serializer=JSONSerializer)
            return GenerationJob.model_validate(job.args[0])
        await asyncio.sleep(0.02)
    raise AssertionError("no generation job was enqueued")


async def emit(publisher: AsyncEventPublisher, job: GenerationJob, events: list[tuple[EventType, dict]]) -> None:
    assert job.reply_to is not None
    for seq, (kind, payload) in enumerate(events):
        await publisher.publish(Event(type=kind, session_id=job.reply_to, job_id=job.job_id, seq=seq, payload=payload))


GENERATED = {
    "text": "Hi there.",
    "input_tokens": 31,
    "output_tokens": 4,
    "finish_reason": "stop",
    "model": "builtin",
    "engine": "transformers",
    "first_token_ms": 120.0,
    "tokens_per_s": 11.5,
}


def test_a_call_is_a_generation_job_and_its_tokens_come_back_as_chunks(mine):
    async def scenario(model: WorkerChatModel, jobs: JobClient, publisher: AsyncEventPublisher):
        chunks: list[AIMessageChunk] = []

        async def worker() -> GenerationJob:
            job = await taken(jobs)
            pieces = [(EventType.TOKEN, {"text": t, "member": "Ada"}) for t in ("Hi", " there", ".")]
            await emit(publisher, job, [*pieces, (EventType.GENERATED, GENERATED)])
            return job

        playing = asyncio.create_task(worker())
        async for chunk in model.for_call(PAYER).astream(MESSAGES):
            chunks.append(chunk)
        return await playing, chunks

    job, chunks = asyncio.run(_run(mine, scenario))
    assert (job.session_id, job.user, job.turn_id, job.member) == ("sess-1", "ann", "turn-1", "Ada")
    assert [(m.role, m.content) for m in job.messages] == [("system", "You are Ada."), ("user", "Hello?")]
    assert (job.max_tokens, job.temperature, job.model, job.reply_to) == (12, 0.3, "builtin", f"llm-{job.job_id}")
    assert [c.text for c in chunks] == ["Hi", " there", ".", ""]
    assert chunks[-1].usage_metadata == {"input_tokens": 31, "output_tokens": 4, "total_tokens": 35}
    assert chunks[-1].response_metadata["finish_reason"] == "stop"
    assert chunks[-1].response_metadata["model_name"] == "builtin"


def test_a_failed_job_and_a_job_run_again_from_its_start_raise(mine):
    async def scenario(model: WorkerChatModel, jobs: JobClient, publisher: AsyncEventPublisher):
        outcomes = []
        for events in (
            [
                (EventType.TOKEN, {"text": "Hi", "member": "Ada"}),
                (EventType.FAILED, {"code": "engine_failed", "message": "boom"}),
            ],
            [(EventType.TOKEN, {"text": "Hi", "member": "Ada"})] * 2,  # seq 0, 1 ... then 0 again below
        ):

            async def worker(events=events) -> None:
                job = await taken(jobs)
                await emit(publisher, job, events)
                if events[0] == events[-1]:  # its worker died; another runs it from the start
                    await emit(publisher, job, events)

            playing = asyncio.create_task(worker())
            with pytest.raises(CouncilFailed) as failed:
                await model.for_call(PAYER).ainvoke(MESSAGES)
            await playing
            outcomes.append(failed.value.message)
        return outcomes

    failed, repeated = asyncio.run(_run(mine, scenario))
    assert "Ada's model failed on the worker: boom" in failed
    assert "stopped in the middle" in repeated


def test_a_call_given_up_stops_its_job(mine):
    async def scenario(model: WorkerChatModel, jobs: JobClient, publisher: AsyncEventPublisher):
        async def worker() -> GenerationJob:
            job = await taken(jobs, claim=False)
            await emit(publisher, job, [(EventType.TOKEN, {"text": "Hi", "member": "Ada"})])
            return job

        playing = asyncio.create_task(worker())
        seen: list[AIMessageChunk] = []

        async def call() -> None:
            async for chunk in model.for_call(PAYER).astream(MESSAGES):
                seen.append(chunk)

        calling = asyncio.create_task(call())
        while not seen:
            await asyncio.sleep(0.01)
        calling.cancel()  # the turn was stopped while the model waited for its next token
        with pytest.raises(asyncio.CancelledError):
            await calling
        first = seen[0]
        job = await playing
        status = Job.fetch(job.job_id, connection=jobs.connection, serializer=JSONSerializer).get_status()
        return first, status, await jobs.aconnection.exists(jobs.settings.cancel_key(job.job_id))

    first, status, asked = asyncio.run(_run(mine, scenario))
    assert first.text == "Hi"
    assert status == "canceled" and asked  # still waiting here (no worker took it): it never runs


def test_with_no_worker_on_the_queue_a_call_says_to_start_one(mine):
    async def scenario(model: WorkerChatModel, jobs: JobClient, publisher: AsyncEventPublisher):
        with pytest.raises(LLMUnavailable) as unavailable:
            await model.for_call(PAYER).ainvoke(MESSAGES)
        return unavailable.value.message

    message = asyncio.run(_run(mine, scenario, start_wait_s=0.3))
    assert f"No worker serves the {mine.llm_queue} queue" in message and f"WORKER_QUEUES={mine.llm_queue}" in message


def test_a_call_must_say_whom_it_is_for(mine):
    async def scenario(model: WorkerChatModel, jobs: JobClient, publisher: AsyncEventPublisher):
        with pytest.raises(TypeError, match="needs its payer"):
            await model.ainvoke(MESSAGES)

    asyncio.run(_run(mine, scenario))
