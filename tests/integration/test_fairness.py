"""One user's flood does not starve the others: users take turns within a queue, and what one user
may have waiting is limited.

The issue's case scaled down: user `flood` puts 600 sentences on the speech queue (three sessions
of 200, as three sockets sending "Hi. " * 200), and user `bob`'s first audio (a sentence on the
speech queue) and transcript (a spoken turn on the realtime queue) are timed with nothing else
waiting, then while the flood waits: each within 2x. Then the limit: past COUNCIL_MAX_QUEUED_PER_USER
the REST API answers 429 `rate_limited` with Retry-After and queues nothing. A real worker process
on queues of this module's own; the async clients the app uses.
"""

import asyncio
import random
import statistics
import time

import pytest
from starlette.testclient import TestClient

from queues import AsyncBlobStore, EventHub, JobClient, QueueSettings
from shared_schemas import EventType, SynthesisJob, TranscriptionJob
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(240)

FLOOD_SESSIONS, FLOOD_PER_SESSION = 3, 200
SAMPLES = 11
THINK = random.Random(13)


@pytest.fixture
def env(own_env) -> dict[str, str]:
    return {
        **own_env,
        "WORKER_THREADS": "2",
        "WORKER_LISTENERS": "0",
    }


@pytest.fixture
def worker(env, tmp_path, workers):
    proc = workers.start(tmp_path / "worker.log", env)
    yield proc
    workers.stop(proc)


async def first_answer(client: JobClient, hub: EventHub, job: SynthesisJob | TranscriptionJob) -> float:
    """Seconds from enqueue to the job's first audio or its transcript. A person's next job comes a
    moment after the last one answered (a turn, an answer's first sentence after the LLM): not at
    the very instant the worker starts its next job, as a loop asking at once would."""
    await asyncio.sleep(THINK.uniform(0.05, 0.15))
    async with hub.subscribe(job.session_id) as sub:
        asked = time.perf_counter()
        await client.aenqueue(job)
        while (event := await sub.get(timeout=60)).job_id != job.job_id or event.type is EventType.PROGRESS:
            pass
        answered = time.perf_counter() - asked
    assert event.type in (EventType.AUDIO, EventType.TRANSCRIPT), event.payload
    return answered


async def bobs_figures(
    client: JobClient, hub: EventHub, blobs: AsyncBlobStore, question: bytes, tag: str, warm_up: bool = False
):
    """First audio and transcript times of bob's jobs, one after the other (after a warm-up job)."""
    audio, heard = [], []
    for n in range(-1 if warm_up else 0, SAMPLES):
        session = f"bob-{tag}-{n}"
        say = SynthesisJob(
            session_id=session,
            job_id=f"{session}-say",
            text="The council has weighed your question, and it agrees on three points.",
            voice="max",
            turn_id=f"{session}-t",
            user="bob",
        )
        key = await blobs.put(session, question)
        hear = TranscriptionJob(
            session_id=session, job_id=f"{session}-hear", audio_key=key, turn_id=f"{session}-t", user="bob"
        )
        first, transcript = await first_answer(client, hub, say), await first_answer(client, hub, hear)
        if n >= 0:
            audio.append(first)
            heard.append(transcript)
    return audio, heard


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def flood(n: int, session: str) -> list[SynthesisJob]:
    hi = {"text": "Hi.", "voice": "max", "turn_id": session, "user": "flood"}
    return [SynthesisJob(session_id=session, job_id=f"{session}-{i}", **hi) for i in range(n)]


@pytest.mark.usefixtures("worker")
def test_another_users_flood_keeps_first_audio_and_transcript_within_2x(env, flite):
    settings = QueueSettings.from_env(env)
    question = flite("please summarize the main risks of this plan for me")

    async def go():
        aredis = settings.connect_async()
        client, blobs = JobClient(settings, aconnection=aredis), AsyncBlobStore(settings, aredis)
        hub = EventHub(settings, aredis)
        await hub.start()
        try:
            quiet = await bobs_figures(client, hub, blobs, question, "quiet", warm_up=True)
            for s in range(FLOOD_SESSIONS):
                await client.aenqueue_all(flood(FLOOD_PER_SESSION, f"flood-{s}"))
            loaded = await bobs_figures(client, hub, blobs, question, "loaded")
            still_waiting = await aredis.llen(f"rq:queue:{settings.speech_queue}")
        finally:
            await hub.close()
            await aredis.aclose()
        return quiet, loaded, still_waiting

    (audio_alone, heard_alone), (audio_flood, heard_flood), still_waiting = asyncio.run(go())
    median = statistics.median
    print(
        f"\nbob's first audio, median of {SAMPLES}: {ms(median(audio_alone))} alone, {ms(median(audio_flood))} while "
        f"another user's {FLOOD_SESSIONS * FLOOD_PER_SESSION} sentences wait "
        f"({median(audio_flood) / median(audio_alone):.2f}x; worst {ms(max(audio_flood))}); transcript "
        f"{ms(median(heard_alone))} alone, {ms(median(heard_flood))} with the flood "
        f"({median(heard_flood) / median(heard_alone):.2f}x; worst {ms(max(heard_flood))}); "
        f"{still_waiting} of the flood's jobs still waiting after bob's last"
    )
    # No job of bob's waited for the flood (it is still there), not even the first.
    assert still_waiting > 0, "the flood drained while bob was timed: his jobs waited behind it"
    assert max(audio_flood) <= median(audio_alone) + 0.5
    assert max(heard_flood) <= median(heard_alone) + 0.5
    assert median(audio_flood) <= 2 * median(audio_alone)
    assert median(heard_flood) <= 2 * median(heard_alone)


def test_past_its_limit_a_user_gets_429_rate_limited_and_nothing_is_queued(env):
    # No worker serves these queues: the jobs stay queued.
    limited = QueueSettings.from_env({**env, "COUNCIL_MAX_QUEUED_PER_USER": "2"})
    files = [("files", (f"memo-{n}.wav", b"RIFF" + b"\0" * 100, "audio/wav")) for n in range(2)]
    with TestClient(create_app(AppSettings(queues=limited))) as client:
        assert client.post("/api/transcriptions", files=files).status_code == 202
        refused = client.post("/api/transcriptions", files=files[:1])
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "at most 2" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) > 0
    connection = limited.connect()
    assert connection.llen(f"rq:queue:{limited.batch_queue}") == 2
    assert len(list(connection.scan_iter(f"{limited.key_prefix}:batch:*"))) == 1  # no record for the refused one
