"""Redis stops and starts again under a running app (a real `python -m web` process): the app stays
up, says so in /health and answers 503 `queue_unavailable` while Redis is away, reconnects by
itself, and nothing it had accepted is lost (Redis keeps an append-only file, fsynced always)."""

import json
import re
import time

import httpx
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SENTENCES = ("please send me the report", "we need more time for testing", "the council has decided")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", "", text.lower()).split()


def until_frame(ws, type_: str, timeout: float = 60.0) -> list[dict]:
    """Frames up to and including the first of `type_`."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while not frames or frames[-1]["type"] != type_:
        frames.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    return frames


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:g} s")


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """The one error shape (web/errors.py), with that status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def health(app) -> tuple[int, dict]:
    response = httpx.get(f"{app.url}/health", timeout=10)
    return response.status_code, response.json()


def recovered(app) -> bool:
    report = health(app)[1]
    return report["redis"] == "ok" and report["events"] == "ok"


def test_the_app_rides_out_a_redis_restart(own_redis, app_process, start_worker, flite):
    app = app_process(own_redis.url)
    data = redis.Redis.from_url(own_redis.url)
    code, report = health(app)
    assert report["redis"] == "ok" and report["events"] == "ok"
    assert code == 503 and report["queues"]["realtime"]["workers"] == 0  # no worker yet

    # Accepted before the outage: a batch of three files, queued (no worker serves them yet).
    files = [("files", (f"clip-{i}.wav", flite(text), "audio/wav")) for i, text in enumerate(SENTENCES)]
    accepted = httpx.post(f"{app.url}/api/transcriptions", files=files, timeout=30)
    assert accepted.status_code == 202, accepted.text
    batch = accepted.json()
    job_ids = [job["job_id"] for job in batch["jobs"]]
    assert data.llen("rq:queue:batch") == 3

    with connect(f"{app.ws_url}/ws/chat") as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "session"

        own_redis.stop()

        code, report = health(app)
        assert code == 503 and report["status"] == "unavailable"
        assert report["redis"].startswith("unreachable")
        wait_for(lambda: "reconnecting" in health(app)[1].get("events", ""), 10, "the event hub says so")
        # REST answers the one error shape, and says when to come back.
        speech = httpx.post(f"{app.url}/api/speech", json={"text": "Hello.", "voice": "max"}, timeout=30)
        assert "try again" in assert_error(speech, 503, "queue_unavailable")["message"].lower()
        assert speech.headers["retry-after"] == "5"
        upload = httpx.post(f"{app.url}/api/transcriptions", files=files[:1], timeout=30)
        assert_error(upload, 503, "queue_unavailable")
        # The open WebSocket stays open: a turn is refused with the same code, a ping answered.
        ws.send(json.dumps({"type": "text", "text": "Are you there?"}))
        refused = until_frame(ws, "error", timeout=20)[-1]
        assert refused["error"]["code"] == "queue_unavailable"
        ws.send(json.dumps({"type": "ping"}))
        assert until_frame(ws, "pong", timeout=10)
        # A new WebSocket gets the error frame and close code 1013 (try again later).
        with connect(f"{app.ws_url}/ws/chat") as late:
            frame = json.loads(late.recv(timeout=20))
            assert frame["type"] == "error" and frame["error"]["code"] == "queue_unavailable"
            with pytest.raises(ConnectionClosed) as closed:
                late.recv(timeout=10)
            assert closed.value.rcvd.code == 1013

        # An app started while Redis is away starts, and says what it waits for.
        second = app_process(own_redis.url)
        code, report = health(second)
        assert code == 503 and report["redis"].startswith("unreachable") and "reconnecting" in report["events"]

        own_redis.start()  # same folder: it reads its append-only file back

        for each in (app, second):
            wait_for(lambda a=each: recovered(a), 20, "the app reconnected")
        # Nothing accepted was lost.
        assert data.llen("rq:queue:batch") == 3
        for job_id in job_ids:
            assert Job.fetch(job_id, connection=data, serializer=JSONSerializer).get_status() == "queued"

        start_worker(own_redis.url)
        assert wait_for(lambda: health(app)[0] == 200, 30, "/health is 200 with a worker")
        # The WebSocket opened before the outage gets the events of a turn run after it.
        ws.send(json.dumps({"type": "text", "text": "Back again. All is well.", "voice": "max"}))
        frames = until_frame(ws, "turn_done", timeout=60)
        assert frames[-1]["payload"] == {"status": "done"}
        assert [f["payload"]["text"] for f in frames if f["type"] == "audio"] == ["Back again.", "All is well."]

    # The files accepted before the outage are transcribed after it.
    def finished():
        status = httpx.get(f"{app.url}{batch['status_url']}", timeout=10).json()
        return status["done"] and status

    status = wait_for(finished, 90, "the batch finished")
    assert [f["state"] for f in status["files"]] == ["finished"] * 3, status
    assert [words(f["text"]) for f in status["files"]] == [words(s) for s in SENTENCES]

    # One line when Redis went away, one when it came back: not one per attempt.
    assert len(app.lines("event hub lost Redis: redis unavailable")) == 1
    assert len(app.lines("redis reconnected")) == 1
