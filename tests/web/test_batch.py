"""The batch transcription API against a real Redis and, where a file must be heard, a real worker.

Tests that need jobs to stay queued use a batch queue no worker listens to.
"""

import json
import re
import time
import uuid

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.applications import Starlette
from starlette.testclient import TestClient

from web import batch, openapi, speech
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(60)


def app_client(queue_settings):
    return TestClient(create_app(AppSettings(queues=queue_settings)))


@pytest.fixture
def client(settings):
    with app_client(settings) as c:
        yield c


@pytest.fixture
def idle(settings):
    """An app whose batch jobs stay queued: no worker serves its batch queue."""
    with app_client(settings.model_copy(update={"batch_queue": "nobody-serves-this"})) as c:
        yield c


def post(client, *files):
    return client.post("/api/transcriptions", files=[("files", (name, data, "audio/wav")) for name, data in files])


def post_as(client, headers, *files):
    files = [("files", (name, data, "audio/wav")) for name, data in files]
    return client.post("/api/transcriptions", files=files, headers=headers)


def wait_done(client, batch_id: str, timeout: float = 40.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/transcriptions/{batch_id}").json()
        if status["done"]:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def words(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).strip()


@pytest.mark.usefixtures("worker")
def test_two_spoken_files_are_transcribed_in_every_format(client, flite):
    sentences = ["the meeting starts at noon", "bring the quarterly report"]
    response = post(client, *[(f"memo-{i}.wav", flite(s)) for i, s in enumerate(sentences)])
    assert response.status_code == 202, response.text
    created = response.json()
    assert response.headers["location"] == created["status_url"] == f"/api/transcriptions/{created['batch_id']}"
    assert [(j["filename"], j["state"]) for j in created["jobs"]] == [
        ("memo-0.wav", "queued"),
        ("memo-1.wav", "queued"),
    ]

    status = wait_done(client, created["batch_id"])
    assert status["totals"] == {"files": 2, "queued": 0, "started": 0, "finished": 2, "failed": 0}
    for file, sentence in zip(status["files"], sentences, strict=True):
        assert file["state"] == "finished" and file["progress"] == 1.0
        assert words(file["text"]) == sentence

        url = file["result_url"]
        txt = client.get(url, params={"format": "txt"})
        assert txt.headers["content-type"] == "text/plain; charset=utf-8"
        assert txt.text == file["text"] + "\n"
        stem = file["filename"].removesuffix(".wav")
        assert txt.headers["content-disposition"].startswith(f'attachment; filename="{stem}.txt"')

        doc = client.get(url)  # json by default
        assert doc.headers["content-type"] == "application/json"
        body = doc.json()
        assert body["text"] == file["text"] and 1.0 < body["duration_s"] < 5.0
        assert body["segments"] and all(
            0 <= s["start"] <= s["end"] <= body["duration_s"] + 0.5 for s in body["segments"]
        )

        srt = client.get(url, params={"format": "srt"})
        assert srt.headers["content-type"] == "application/x-subrip; charset=utf-8"
        assert f'filename="{stem}.srt"' in srt.headers["content-disposition"]
        blocks = srt.text.strip().split("\n\n")
        for n, block in enumerate(blocks, 1):
            number, times, *lines = block.split("\n")
            assert number == str(n) and lines
            assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", times)
        assert words(" ".join(b.split("\n", 2)[2] for b in blocks)) == sentence

        vtt = client.get(url, params={"format": "vtt"})
        assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
        assert vtt.text.startswith("WEBVTT\n\n")
        assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}$", vtt.text, re.M)


@pytest.mark.usefixtures("worker")
def test_a_file_the_worker_cannot_decode_fails_with_its_reason(client, flite, assert_error):
    response = post(client, ("notes.wav", b"this is not audio at all" * 40), ("ok.wav", flite("good morning")))
    assert response.status_code == 202
    status = wait_done(client, response.json()["batch_id"])
    bad, good = status["files"]
    assert good["state"] == "finished"
    assert bad["state"] == "failed" and bad["error"]["code"] in ("undecodable_audio", "unsupported_format")
    error = assert_error(client.get(bad["result_url"], params={"format": "srt"}), 422, bad["error"]["code"])
    assert error["message"] == bad["error"]["message"]
    assert status["totals"]["failed"] == 1 and status["totals"]["finished"] == 1


def test_an_empty_file_is_refused_without_a_job_and_queued_files_answer_409(idle, settings, connection, assert_error):
    response = post(idle, ("empty.wav", b""), ("later.wav", b"RIFF....WAVE"), ("odd.name.xyz", b"\x00" * 64))
    assert response.status_code == 202, response.text
    empty, later, odd = response.json()["jobs"]
    assert empty["state"] == "failed" and empty["error"]["code"] == "empty_audio"
    assert later["state"] == odd["state"] == "queued"
    assert Job.fetch(later["job_id"], connection=connection, serializer=JSONSerializer).args[0]["format"] == "wav"
    assert Job.fetch(odd["job_id"], connection=connection, serializer=JSONSerializer).args[0]["format"] is None
    assert not Job.exists(empty["job_id"], connection=connection)

    status = idle.get(response.json()["status_url"]).json()
    assert status["done"] is False
    assert status["totals"] == {"files": 3, "queued": 2, "started": 0, "finished": 0, "failed": 1}
    assert status["files"][0]["error"]["code"] == "empty_audio"
    assert_error(idle.get(empty["result_url"]), 422, "empty_audio")
    error = assert_error(idle.get(later["result_url"], params={"format": "vtt"}), 409, "not_ready")
    assert "queued" in error["message"]
    key = batch.record_key(settings, response.json()["batch_id"])
    assert 0 < connection.ttl(key) <= batch.record_ttl(settings)


def test_only_empty_files_is_400(idle, assert_error):
    assert_error(post(idle, ("a.wav", b""), ("b.wav", b"")), 400, "empty_audio")


def test_no_files_is_400(idle, assert_error):
    assert_error(idle.post("/api/transcriptions", files={"other": ("a.wav", b"RIFF")}), 400, "no_files")
    as_text = idle.post("/api/transcriptions", data={"files": "not a file"}, files={"other": ("a.wav", b"RIFF")})
    assert_error(as_text, 400, "no_files")
    assert_error(idle.post("/api/transcriptions", data={"files": "x"}), 400, "invalid_request")  # not multipart
    assert_error(idle.post("/api/transcriptions", json={"files": []}), 400, "invalid_request")


def test_too_many_files_is_400(idle, assert_error):
    files = [(f"f{i}.wav", b"x") for i in range(batch.MAX_FILES + 1)]
    error = assert_error(post(idle, *files), 400, "too_many_files")
    assert str(batch.MAX_FILES) in error["message"]


def test_a_file_over_the_limit_is_413(settings, assert_error):
    with app_client(settings.model_copy(update={"blob_max_bytes": 4096})) as small:
        error = assert_error(post(small, ("ok.wav", b"x" * 100), ("big.wav", b"x" * 5000)), 413, "audio_too_large")
    assert "big.wav" in error["message"]


def test_a_declared_body_over_the_batch_limit_is_413_before_reading(idle, assert_error):
    headers = {"content-type": "multipart/form-data; boundary=x", "content-length": str(batch.MAX_BATCH_BYTES + 1)}
    response = idle.post("/api/transcriptions", content=b"--x--\r\n", headers=headers)
    assert_error(response, 413, "too_large")


def test_unknown_batch_job_and_format(idle, assert_error):
    assert_error(idle.get("/api/transcriptions/0123456789abcdef0123456789abcdef"), 404, "not_found")
    assert_error(idle.get("/api/transcriptions/..%2Fetc"), 404, "not_found")
    created = post(idle, ("a.wav", b"RIFF....WAVE")).json()
    job_url = created["jobs"][0]["result_url"]
    assert_error(idle.get(f"{created['status_url']}/no-such-job"), 404, "not_found")
    assert_error(idle.get(job_url, params={"format": "docx"}), 400, "unknown_format")


def test_openapi_describes_every_rest_route():
    spec = json.loads(json.dumps(openapi.SPEC))
    assert spec["openapi"].startswith("3.")
    for route in [*batch.routes, *speech.routes]:
        assert route.path in spec["paths"], route.path
        for method in route.methods - {"HEAD"}:
            assert method.lower() in spec["paths"][route.path]
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(spec)))
    assert refs <= set(spec["components"]["schemas"])
    with TestClient(Starlette(routes=openapi.routes)) as client:
        assert client.get("/openapi.json").json() == spec


def silent_wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def test_a_users_batches_are_listed_newest_first_a_page_at_a_time(settings, assert_error):
    """What the batch page shows after a reload: the user's batches, newest first; nobody else's."""
    alice_name, bob_name = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    app = create_app(
        AppSettings(
            queues=settings.model_copy(update={"batch_queue": "nobody-serves-this"}),
            # Users of this test alone: the test run's Redis holds other tests' batches of alice and bob.
            api_users={alice_name: "alice-token", bob_name: "bob-token"},
        )
    )
    alice, bob = {"Authorization": "Bearer alice-token"}, {"Authorization": "Bearer bob-token"}
    with TestClient(app) as client:
        made = [post_as(client, alice, (f"memo-{i}.wav", b"RIFF....WAVE")).json()["batch_id"] for i in range(3)]
        theirs = post_as(client, bob, ("bob.wav", b"RIFF....WAVE")).json()["batch_id"]

        first = client.get("/api/transcriptions", params={"limit": 2}, headers=alice).json()
        assert [b["batch_id"] for b in first["batches"]] == [made[2], made[1]]
        newest = first["batches"][0]
        assert newest["filenames"] == ["memo-2.wav"] and newest["files"][0]["state"] == "queued"
        assert first["next"] is not None
        second = client.get("/api/transcriptions", params={"limit": 2, "before": first["next"]}, headers=alice)
        assert [b["batch_id"] for b in second.json()["batches"]] == [made[0]] and second.json()["next"] is None
        assert [b["batch_id"] for b in client.get("/api/transcriptions", headers=bob).json()["batches"]] == [theirs]

        # A batch that expired drops out of the list.
        redis_client = settings.connect()
        redis_client.delete(batch.record_key(settings, made[1]))
        listed = client.get("/api/transcriptions", headers=alice).json()["batches"]
        assert [b["batch_id"] for b in listed] == [made[2], made[0]]
        assert redis_client.zscore(batch.index_key(settings, alice_name), made[1]) is None

        assert_error(client.get("/api/transcriptions", params={"limit": 0}, headers=alice), 400, "invalid_request")
        bad_cursor = client.get("/api/transcriptions", params={"before": "yesterday"}, headers=alice)
        assert_error(bad_cursor, 400, "invalid_request")


@pytest.mark.usefixtures("worker")
def test_a_batch_downloads_as_one_zip_and_a_silent_file_says_no_speech(client, flite, assert_error):
    import io
    import zipfile

    created = post(
        client,
        ("memo.wav", flite("the meeting starts at noon")),
        ("memo.wav", flite("good morning")),
        ("quiet.wav", silent_wav()),
    ).json()
    status = wait_done(client, created["batch_id"])
    first, second, quiet = status["files"]
    assert first["state"] == second["state"] == quiet["state"] == "finished"
    assert quiet.get("no_speech") is True and "no_speech" not in first

    archive = client.get(f"{created['status_url']}/archive", params={"format": "txt"})
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert sorted(z.namelist()) == ["memo (2).wav.txt", "memo.wav.txt", "quiet.wav.txt"]
        assert words(z.read("memo.wav.txt").decode()) == "the meeting starts at noon"
        assert words(z.read("memo (2).wav.txt").decode()) == "good morning"
    assert_error(client.get(f"{created['status_url']}/archive", params={"format": "doc"}), 400, "unknown_format")


def test_an_unfinished_batch_has_no_archive_yet(idle, assert_error):
    created = post(idle, ("a.wav", b"RIFF....WAVE")).json()
    assert_error(idle.get(f"{created['status_url']}/archive"), 409, "not_ready")
    assert_error(idle.get("/api/transcriptions/0123456789abcdef0123456789abcdef/archive"), 404, "not_found")
