"""`POST /api/speech` against a real Redis and, where something must be spoken, a real worker."""

import io
import threading
import time
import uuid
import wave

import numpy as np
import pytest
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from queues import BlobStore, EventPublisher
from shared_schemas import MAX_TEXT_CHARS, Event, EventType, SpeechClip
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(settings):
    with TestClient(create_app(AppSettings(queues=settings))) as c:
        yield c


@pytest.mark.usefixtures("worker")
def test_speech_is_one_wav_of_every_sentence(client):
    response = client.post(
        "/api/speech", json={"text": "The council has decided. We build the bridge.", "voice": "max"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        duration = w.getnframes() / w.getframerate()
    assert duration == pytest.approx(float(response.headers["x-duration-seconds"]), abs=0.01)
    assert 1.5 < duration < 10.0


def level_wav(level: int) -> bytes:
    """10 ms of one sample value, so a joined WAV shows which clip went where."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(np.full(160, level, dtype="<i2").tobytes())
    return buffer.getvalue()


def test_clips_are_joined_in_sentence_and_chunk_order_whatever_order_they_come_in(settings, connection):
    """Here the test answers for the worker: it takes the job from a queue no worker reads and sends
    a streaming voice's chunks shuffled (the job's last clip last, as it ends the job)."""
    queue = f"speech-order-{uuid.uuid4().hex[:8]}"
    sent = [(1, 0, False), (0, 1, True), (0, 0, False), (1, 1, True)]  # (index, chunk, sentence_done)

    def speak_for_the_worker() -> None:
        deadline = time.monotonic() + 20
        while not (queued := connection.lrange(f"rq:queue:{queue}", 0, -1)) and time.monotonic() < deadline:
            time.sleep(0.02)
        session_id = queued[0].decode()  # /api/speech names the job after its session
        blobs, publisher = BlobStore(settings, connection), EventPublisher(settings, connection)
        for seq, (index, chunk, done) in enumerate(sent):
            clip = SpeechClip(
                audio_key=blobs.put(session_id, level_wav(1000 * (10 * index + chunk + 1)), ".wav"),
                sample_rate=16_000, duration_s=0.01,
                voice="max", index=index, chunk=chunk, sentence_done=done, last=seq == len(sent) - 1,
                text=f"Sentence {index}.", engine="test",
            )  # fmt: skip
            event = Event(
                type=EventType.AUDIO, session_id=session_id, job_id=session_id, seq=seq, payload=clip.model_dump()
            )
            publisher.publish(event)

    worker = threading.Thread(target=speak_for_the_worker)
    with TestClient(create_app(AppSettings(queues=settings.model_copy(update={"realtime_queue": queue})))) as client:
        worker.start()
        response = client.post("/api/speech", json={"text": "Sentence zero. Sentence one.", "voice": "max"})
    worker.join()
    assert response.status_code == 200, response.text
    with wave.open(io.BytesIO(response.content)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert [int(block[0]) for block in samples.reshape(-1, 160)] == [1000, 2000, 11000, 12000]
    assert (samples.reshape(-1, 160) == samples.reshape(-1, 160)[:, :1]).all()
    assert response.headers["x-duration-seconds"] == "0.040"


@pytest.mark.usefixtures("worker")
def test_an_unknown_voice_is_the_workers_422(client, assert_error):
    error = assert_error(client.post("/api/speech", json={"text": "Hello.", "voice": "nobody"}), 422, "unknown_voice")
    assert "nobody" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"text": "Hello."}',
        b'{"voice": "max"}',
        b'{"text": 3, "voice": "max"}',
        b'{"text": "Hello.", "voice": "two words"}',
        b'{"text": "Hello.", "voice": "max", "speed": 2}',
    ],
)
def test_malformed_requests_are_400(client, body, assert_error):
    response = client.post("/api/speech", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_request")


def test_text_the_worker_would_refuse_is_422_at_once(client, assert_error):
    assert_error(client.post("/api/speech", json={"text": "  ", "voice": "max"}), 422, "empty_text")
    long = client.post("/api/speech", json={"text": "a" * (MAX_TEXT_CHARS + 1), "voice": "max"})
    assert_error(long, 422, "text_too_long")


def test_a_body_too_large_is_413(client, assert_error):
    response = client.post("/api/speech", json={"text": "a" * 20_000, "voice": "max"})
    assert_error(response, 413, "too_large")


def test_no_worker_in_time_is_504_and_the_job_is_cancelled(settings, connection, assert_error):
    quiet = settings.model_copy(update={"realtime_queue": "nobody-speaks-here", "synthesize_timeout_s": 1})
    with TestClient(create_app(AppSettings(queues=quiet))) as client:
        error = assert_error(client.post("/api/speech", json={"text": "Hello.", "voice": "max"}), 504, "timeout")
    assert "1 s" in error["message"]
    job_ids = connection.zrange("rq:canceled:nobody-speaks-here", 0, -1)
    assert job_ids
    job = Job.fetch(job_ids[-1].decode(), connection=connection, serializer=JSONSerializer)
    assert job.get_status() == "canceled"
