"""One meter for every path: a frozen or spent user is refused before anything is enqueued, over
REST (speech, batches), on the chat WebSocket (turns, the microphone), whatever answers turns."""

import io
import uuid

import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from billing import Ledger
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def alice(settings, connection):
    """An echo app with a token for alice, and alice frozen by an operator."""
    token = uuid.uuid4().hex
    name = f"alice{uuid.uuid4().hex[:6]}"
    Ledger(connection, settings.key_prefix).freeze("user", name)
    app = create_app(AppSettings(queues=settings, responder="echo", api_users={name: token}))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client, token


def queued(connection, settings) -> int:
    return sum(Queue(name, connection=connection, serializer=JSONSerializer).count for name in settings.all_queue_names)


def test_a_frozen_user_cannot_speak_over_rest(alice, settings, connection, assert_error):
    client, _ = alice
    before = queued(connection, settings)
    response = client.post("/api/speech", json={"text": "Hello there.", "voice": "max"})
    error = assert_error(response, 429, "budget_exceeded")
    assert "frozen" in error["message"]
    assert queued(connection, settings) == before


def test_a_frozen_user_cannot_transcribe_a_batch_and_nothing_is_left_behind(alice, settings, connection, flite):
    client, _ = alice
    before = set(connection.keys(f"{settings.key_prefix}:blob:*")) | set(connection.keys("*:batch:*"))
    files = [("files", (f"memo-{i}.wav", io.BytesIO(flite("hello there")), "audio/wav")) for i in range(2)]
    response = client.post("/api/transcriptions", files=files)
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"
    after = set(connection.keys(f"{settings.key_prefix}:blob:*")) | set(connection.keys("*:batch:*"))
    assert after == before  # no audio kept, no batch recorded


def test_a_frozen_user_cannot_open_the_microphone_or_run_a_turn(alice, chat_path):
    client, token = alice
    with client.websocket_connect(chat_path(token=token)) as ws:
        ws.receive_json()
        ws.send_json({"type": "listen"})
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "budget_exceeded"
        ws.send_json({"type": "text", "text": "Hello.", "voice": "max"})
        frames = [ws.receive_json()]
        while frames[-1]["type"] != "turn_done":
            frames.append(ws.receive_json())
        assert frames[-1]["payload"]["error"]["code"] == "budget_exceeded"
        assert "audio" not in [f["type"] for f in frames]  # nothing was spoken


def test_a_job_reserved_before_its_user_was_frozen_does_not_run(settings, connection):
    """The worker looks again when the job starts: an operator's freeze stops what is queued."""
    from queues import JobClient, replay
    from shared_schemas import SynthesisJob

    name, session = f"bob{uuid.uuid4().hex[:6]}", f"test-{uuid.uuid4().hex[:8]}"
    Ledger(connection, settings.key_prefix).freeze("user", name)
    job = SynthesisJob(session_id=session, job_id=f"{session}-say", text="Hello.", voice="max", user=name)
    JobClient(settings, connection).enqueue(job)
    import time

    deadline = time.monotonic() + 30
    while not (ended := [e for e in replay(connection, settings, session) if e.terminal]):
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.1)
    assert ended[0].type.value == "failed" and ended[0].payload.code == "budget_exceeded"
    assert not ended[0].payload.retryable
