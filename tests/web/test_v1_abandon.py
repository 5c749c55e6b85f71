"""Work nobody waits for is stopped (#22, break 5): a /v1/audio/transcriptions request whose client
hangs up, streamed or not, cancels its job, and a long file waits on the batch queue, not on the
realtime one kept for conversations. A real server (uvicorn) and real Redis; no worker serves
these queues, so a job stays where the app put it until the app takes it back."""

import io
import subprocess
import time
import wave

import httpx
import pytest

from web.app import create_app
from web.lengths import declared_seconds
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(60)


def wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"\1\0" * int(16000 * seconds))
    return out.getvalue()


def waiting(connection, queue: str) -> int:
    return connection.llen(f"rq:queue:{queue}")


def until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_stops_its_transcription(own, connection, serve, stream):
    app = create_app(AppSettings(queues=own, responder="echo"))
    with serve(app) as url:
        fields = {"model": "whisper-1", "stream": str(stream).lower()}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/audio/transcriptions", data=fields, files={"file": ("memo.wav", wav(3))}, timeout=1.5)
        # The client is gone: its job leaves the queue (before, it waited there for a worker).
        assert until(lambda: waiting(connection, own.realtime_queue) == 0), "the abandoned job is still queued"
        assert until(lambda: not connection.keys(f"{own.key_prefix}:blob:*"))  # and its audio is freed


def test_a_long_file_waits_on_the_batch_queue_not_the_realtime_one(own, connection, serve):
    app = create_app(AppSettings(queues=own, responder="echo", v1_realtime_max_bytes=2**20))
    with serve(app) as url:
        with httpx.Client(timeout=30) as client:
            fields = {"model": "whisper-1"}
            with pytest.raises(httpx.ReadTimeout):
                # Five minutes of audio (9.6 MB): past the realtime limit.
                client.post(
                    f"{url}/v1/audio/transcriptions", data=fields, files={"file": ("long.wav", wav(300))}, timeout=3
                )
        assert until(lambda: waiting(connection, own.batch_queue) == 0)  # it was there, and is stopped
    # While it waited, it waited on the batch queue: seen in its job's origin.
    origins = {connection.hget(k, "origin") for k in connection.keys("rq:job:v1-stt-*")}
    assert own.batch_queue.encode() in origins and own.realtime_queue.encode() not in origins


@pytest.fixture(scope="module")
def two_hours_of_silence(tmp_path_factory) -> bytes:
    """A FLAC of 2 h of silence, as ffmpeg makes it: ~1.3 MB, under the realtime limit in bytes."""
    out = tmp_path_factory.mktemp("flac") / "silence.flac"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            "7200",
            "-c:a",
            "flac",
            str(out),
        ],
        check=True,
        timeout=120,
    )
    return out.read_bytes()


def test_a_file_is_as_long_as_its_header_says(two_hours_of_silence):
    assert len(two_hours_of_silence) < 2 * 2**20
    assert declared_seconds(two_hours_of_silence) == pytest.approx(7200, abs=0.1)
    assert declared_seconds(wav(3)) == pytest.approx(3.0)
    assert declared_seconds(b"ID3\x03" + b"\0" * 100) is None  # an mp3 does not say
    assert declared_seconds(b"fLaC\x00\x00") is None  # nor does a cut header
    assert declared_seconds(b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00") is None  # a WAV's, cut in its fmt


def test_a_small_file_that_says_it_is_long_waits_on_the_batch_queue(own, connection, serve, two_hours_of_silence):
    app = create_app(AppSettings(queues=own, responder="echo"))
    with serve(app) as url:
        files = {"file": ("silence.flac", two_hours_of_silence)}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/audio/transcriptions", data={"model": "whisper-1"}, files=files, timeout=2)
        assert until(lambda: waiting(connection, own.batch_queue) == 0)
    origins = {connection.hget(k, "origin") for k in connection.keys("rq:job:v1-stt-*")}
    assert own.batch_queue.encode() in origins and own.realtime_queue.encode() not in origins
