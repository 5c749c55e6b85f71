import asyncio

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import AsyncBlobStore, BlobMissing, BlobStore, BlobTooLarge, JobClient, QueueSettings, functions, job_status
from shared_schemas import PingJob, SynthesisJob, TranscriptionJob


@pytest.fixture
def settings(redis_url):
    """Queues no worker listens to, so that jobs stay queued for these tests to look at."""
    return QueueSettings(redis_url=redis_url, retries=1, realtime_queue="idle-realtime", batch_queue="idle-batch")


def test_enqueue_by_name_as_json(settings, connection, session_id):
    client = JobClient(settings, connection)
    payload = SynthesisJob(session_id=session_id, job_id=f"{session_id}-1", text="Hi.", voice="max")
    job = client.enqueue(payload)
    stored = Job.fetch(job.id, connection=connection, serializer=JSONSerializer)
    assert stored.func_name == functions.SYNTHESIZE
    assert stored.args == [payload.model_dump(mode="json")]
    assert stored.origin == "idle-realtime"
    assert stored.timeout == settings.synthesize_timeout_s
    assert stored.retries_left == settings.retries
    assert stored.meta == {"session_id": session_id, "kind": "synthesis"}
    assert connection.lrange("rq:queue:idle-realtime", 0, -1)[-1] == job.id.encode()
    assert job_status(connection, job.id).state == "queued"


def test_async_enqueue_writes_what_rq_writes(settings, connection, session_id):
    client = JobClient(settings, connection)
    sync_job = client.enqueue(TranscriptionJob(session_id=session_id, job_id="sync-1", audio_key="k"), "idle-batch")

    async def go():
        aconn = settings.connect_async()
        job = await JobClient(settings, connection, aconn).aenqueue(
            TranscriptionJob(session_id=session_id, job_id="async-1", audio_key="k"), "idle-batch"
        )
        await aconn.aclose()
        return job

    async_job = asyncio.run(go())
    a = connection.hgetall(sync_job.key)
    b = connection.hgetall(async_job.key)
    assert set(a) == set(b)
    for field in (b"status", b"origin", b"timeout", b"retries_left", b"result_ttl", b"failure_ttl"):
        assert a[field] == b[field]
    assert connection.lrange("rq:queue:idle-batch", -2, -1) == [b"sync-1", b"async-1"]
    assert Job.fetch("async-1", connection=connection, serializer=JSONSerializer).func_name == functions.TRANSCRIBE


def test_unknown_queue_is_refused(settings, connection, session_id):
    with pytest.raises(ValueError, match="unknown queue"):
        JobClient(settings, connection).enqueue(PingJob(session_id=session_id, job_id="p"), "nope")


def test_cancel_a_queued_job(settings, connection, session_id):
    client = JobClient(settings, connection)
    job = client.enqueue(PingJob(session_id=session_id, job_id=f"{session_id}-c"), "idle-batch")
    assert client.cancel(job.id)
    assert job_status(connection, job.id).state == "canceled"
    assert not client.cancel("no-such-job")
    assert job_status(connection, "no-such-job").state == "unknown"


def test_blobs_have_a_ttl_a_cap_and_an_owner(redis_url, connection, session_id):
    settings = QueueSettings(redis_url=redis_url, blob_max_bytes=1000, blob_ttl_s=60)
    blobs = BlobStore(settings, connection)
    key = blobs.put(session_id, b"x" * 1000, ".wav")
    assert blobs.get(key) == b"x" * 1000
    assert 0 < connection.ttl(key) <= 60
    assert blobs.owner(key) == session_id
    assert blobs.owner("rq:job:whatever") is None
    assert key != blobs.put(session_id, b"y")
    with pytest.raises(BlobTooLarge):
        blobs.put(session_id, b"x" * 1001)
    blobs.delete(key)
    with pytest.raises(BlobMissing):
        blobs.get(key)

    async def go():
        aconn = settings.connect_async()
        store = AsyncBlobStore(settings, aconn)
        k = await store.put(session_id, b"abc")
        data = await store.get(k)
        await aconn.aclose()
        return data

    assert asyncio.run(go()) == b"abc"


def test_settings_from_env():
    s = QueueSettings.from_env({"COUNCIL_REDIS_URL": "redis://h:1/2", "COUNCIL_BLOB_TTL_S": "5"})
    assert (s.redis_url, s.blob_ttl_s) == ("redis://h:1/2", 5)
    assert QueueSettings.from_env({"REDIS_URL": "rediss://x"}).redis_url == "rediss://x"
    with pytest.raises(ValueError, match="COUNCIL_BLOB_TTL_S"):
        QueueSettings.from_env({"COUNCIL_BLOB_TTL_S": "soon"})
    with pytest.raises(ValueError, match="COUNCIL_REDIS_URL"):
        QueueSettings.from_env({"COUNCIL_REDIS_URL": "http://x"})
