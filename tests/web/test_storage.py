"""Memory bounds: a user's stored audio has a quota, and a Redis at its `maxmemory` (noeviction)
makes the app answer 503 storage_full with nothing half-stored, on REST and on the WebSocket."""

import io
import uuid

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from queues import QueueSettings
from web.app import create_app
from web.settings import AppSettings


def files(flite, n: int) -> list:
    return [("files", (f"memo-{i}.wav", io.BytesIO(flite(f"memo number {i}")), "audio/wav")) for i in range(n)]


def test_a_users_audio_quota_refuses_an_upload_that_would_pass_it(settings, connection, flite, assert_error):
    size = len(flite("memo number 0"))
    user, token = f"carol{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    app = create_app(
        AppSettings(queues=settings, responder="echo", blob_quota_bytes=int(size * 1.5), api_users={user: token})
    )
    before = set(connection.keys(f"{settings.key_prefix}:blob:*"))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        error = assert_error(client.post("/api/transcriptions", files=files(flite, 2)), 429, "audio_quota")
        assert "MiB" in error["message"] and "Wait for your files" in error["message"]
        assert set(connection.keys(f"{settings.key_prefix}:blob:*")) == before  # nothing kept
        assert client.post("/api/transcriptions", files=files(flite, 1)).status_code == 202  # within it


def test_a_full_redis_answers_storage_full_and_nothing_is_half_enqueued(own_redis, flite, chat_path):
    settings = QueueSettings(redis_url=own_redis.url)
    conn = redis.Redis.from_url(own_redis.url)
    conn.config_set("maxmemory-policy", "noeviction")
    app = create_app(AppSettings(queues=settings, responder="echo"))
    with TestClient(app) as client:
        # Full now, by a wide margin: Redis's own use moves by kilobytes (buffers of closed clients).
        conn.config_set("maxmemory", max(1, conn.info("memory")["used_memory"] // 2))
        response = client.post("/api/transcriptions", files=files(flite, 3))
        assert response.status_code == 503 and response.json()["error"]["code"] == "storage_full"
        assert response.headers["Retry-After"]
        conn.config_set("maxmemory", 0)
        queued = Queue(settings.batch_queue, connection=conn, serializer=JSONSerializer).count
        assert queued == 0 and not conn.keys("council:batch:*") and not conn.keys("council:blob:*")
        # A new WebSocket, with Redis full: told why, and closed with "try again later".
        conn.config_set("maxmemory", max(1, conn.info("memory")["used_memory"] // 2))
        with client.websocket_connect(chat_path()) as ws:
            frame = ws.receive_json()
            assert frame["type"] == "error" and frame["error"]["code"] == "storage_full"
            with pytest.raises(Exception) as closed:
                ws.receive_json()
            assert getattr(closed.value, "code", None) == 1013
        conn.config_set("maxmemory", 0)


def _stored(connection, settings: QueueSettings, user: str) -> int:
    """What `user` holds, as the counters say (web/meter.py, queues/_storage.py)."""
    keys = connection.keys(f"{settings.key_prefix}:stored:{user}:*")
    return sum(int(v) for v in connection.mget(keys)) if keys else 0


@pytest.mark.timeout(30)  # before: no quota, and no worker here to answer
def test_a_v1_transcription_upload_counts_against_its_users_share(settings, connection, flite, assert_error):
    """/v1/audio/transcriptions stored uploads with no quota at all (17 at once: Redis at 1.8x its cap)."""
    data = flite("memo number 0")
    user, token = f"dave{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    app = create_app(
        AppSettings(queues=settings, responder="echo", blob_quota_bytes=len(data) // 2, api_users={user: token})
    )
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"file": ("m.wav", data)})
        # In OpenAI's shape, as every refusal of a /v1 route (web/v1/errors.py).
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        assert error["code"] == "audio_quota" and error["type"] == "rate_limit_error" and error["message"]
    assert _stored(connection, settings, user) == 0


def test_cancelling_a_batch_frees_its_stored_files(settings, connection, flite):
    idle = settings.model_copy(update={"batch_queue": f"nobody-{uuid.uuid4().hex[:6]}"})
    user, token = f"erin{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    app = create_app(AppSettings(queues=idle, responder="echo", api_users={user: token}))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        batch = client.post("/api/transcriptions", files=files(flite, 2)).json()
        held = _stored(connection, settings, user)
        assert held > 0
        blobs = connection.keys(f"{settings.key_prefix}:blob:batch-{batch['batch_id']}:*")
        assert len(blobs) == 2
        cancelled = client.delete(batch["status_url"]).json()
        assert [f["cancel"] for f in cancelled["files"]] == ["canceled", "canceled"]
        assert not connection.exists(*blobs) and _stored(connection, settings, user) == 0
