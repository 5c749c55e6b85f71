"""`POST /api/speech` against a real Redis and, where something must be spoken, a real worker."""

import dataclasses
import io
import wave

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from shared_schemas import MAX_TEXT_CHARS
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
    quiet = dataclasses.replace(settings, realtime_queue="nobody-speaks-here", synthesize_timeout_s=1)
    with TestClient(create_app(AppSettings(queues=quiet))) as client:
        error = assert_error(client.post("/api/speech", json={"text": "Hello.", "voice": "max"}), 504, "timeout")
    assert "1 s" in error["message"]
    job_ids = connection.zrange("rq:canceled:nobody-speaks-here", 0, -1)
    assert job_ids
    job = Job.fetch(job_ids[-1].decode(), connection=connection, serializer=JSONSerializer)
    assert job.get_status() == "canceled"
