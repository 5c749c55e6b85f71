"""A worker killed while it listens to someone: another worker resumes the stream from its frames in
Redis, with no word lost; when none does, the person is told, and speaks again to another."""

import io
import json
import threading
import time
import wave

import pytest
from starlette.testclient import TestClient

from shared_schemas import turn_of
from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
FRAME = 640
FAST_LIVENESS = {"WORKER_ALIVE_TTL": "2", "WORKER_BEAT": "0.5"}  # a dead worker is adopted in ~3 s


def pcm(wav_bytes: bytes) -> bytes:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        return w.readframes(w.getnframes())


class Silence:
    """A page keeps streaming while it waits: 20 ms of silence every 20 ms, from a thread."""

    def __init__(self, ws) -> None:
        self.ws, self.on = ws, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.on.wait()
            try:
                self.ws.send_bytes(bytes(FRAME))
            except Exception:  # noqa: BLE001 - the socket closed at the test's end
                return
            time.sleep(0.02)


def frames_until(ws, kind: str) -> list[dict]:
    got = []
    while True:
        message = ws.receive()
        if message.get("text"):
            got.append(json.loads(message["text"]))
            if got[-1]["type"] == kind:
                return got


def send(ws, audio: bytes) -> None:
    for i in range(0, len(audio), FRAME):
        ws.send_bytes(audio[i : i + FRAME])


def test_a_worker_killed_mid_stream_is_replaced_by_another_that_resumes_the_stream_losing_no_word(pool, piper_speech):
    workers = {name: pool.start(WORKER_NAME=name, **FAST_LIVENESS) for name in ("lw-a", "lw-b")}
    first = pcm(piper_speech("What time does the library open on Sundays?"))
    second = pcm(piper_speech("Is there parking near the station?"))
    app = create_app(AppSettings(queues=pool.settings, responder="echo", mic_resume_wait_s=30))
    with TestClient(app) as client, client.websocket_connect("/ws/chat") as ws:
        ws.receive_json()
        silence = Silence(ws)
        ws.send_json({"type": "listen", "voice": "max"})
        stream_id = ws.receive_json()["stream_id"]
        silence.on.set()
        listening = frames_until(ws, "listening")[-1]["payload"]
        silence.on.clear()
        time.sleep(0.05)
        send(ws, first)
        silence.on.set()
        frames = frames_until(ws, "transcript")
        assert "library" in frames[-1]["payload"]["text"].lower()
        silence.on.clear()
        time.sleep(1.5)  # the first answer's turn ends; the listener saves where it got to
        half = len(second) // 4 * 2  # (whole samples)
        send(ws, second[:half])  # half of the second question, then its worker dies
        workers[listening["worker"].rsplit("-", 1)[0]].kill()  # (its child is named <name>-<n>)
        killed = time.monotonic()
        send(ws, second[half:])
        silence.on.set()
        frames = frames_until(ws, "listening")  # the stream taken again, by the other worker
        took_s = time.monotonic() - killed
        resumed = frames[-1]["payload"]
        assert resumed["resumed"] and resumed["worker"] != listening["worker"] and frames[-1]["job_id"] == stream_id
        frames += frames_until(ws, "transcript")
        assert not [f for f in frames if f["type"] == "failed"]
        transcript = frames[-1]
        assert turn_of(transcript["job_id"]).endswith("-2"), transcript  # the turn numbers go on
        text = transcript["payload"]["text"].lower()
        assert "parking" in text and "station" in text, text  # the half said before the kill too
        print(
            f"\nworker killed -> stream resumed by another worker: {took_s:.1f} s; "
            f"-> the second question's transcript: {time.monotonic() - killed:.1f} s"
        )
        while frames_until(ws, "turn_done")[-1]["job_id"] != turn_of(transcript["job_id"]):
            pass  # its answer ends before the app does


def test_a_worker_killed_mid_stream_with_none_to_resume_it_fails_saying_so_and_the_next_one_works(pool, piper_speech):
    first = pool.start(**FAST_LIVENESS)
    question = pcm(piper_speech("What time does the library open on Sundays?"))
    app = create_app(AppSettings(queues=pool.settings, responder="echo", mic_resume_wait_s=3))
    with TestClient(app) as client, client.websocket_connect("/ws/chat") as ws:
        ws.receive_json()
        silence = Silence(ws)
        ws.send_json({"type": "listen", "voice": "max"})
        stream_id = ws.receive_json()["stream_id"]
        silence.on.set()
        frames_until(ws, "listening")
        silence.on.clear()
        for i in range(0, len(question) // 2, FRAME):  # half a question, then the worker dies
            ws.send_bytes(question[i : i + FRAME])
        first.kill()
        killed = time.monotonic()
        silence.on.set()
        frames = frames_until(ws, "failed")
        failed = frames[-1]
        assert failed["job_id"] == stream_id and failed["payload"]["code"] == "worker_lost"
        assert "speak again" in failed["payload"]["message"].lower() and failed["payload"]["retryable"]
        print(f"\nworker killed -> the person told: {time.monotonic() - killed:.1f} s")
        # Another worker: the person opens the microphone again and is heard.
        pool.start(**FAST_LIVENESS)
        silence.on.clear()
        ws.send_json({"type": "listen", "voice": "max"})
        new_stream = frames_until(ws, "mic")[-1]["stream_id"]
        silence.on.set()
        # (The new worker also takes the dead one's job, and finds that stream abandoned: it ends.)
        while frames_until(ws, "listening")[-1]["job_id"] != new_stream:
            pass
        silence.on.clear()
        time.sleep(0.05)
        for i in range(0, len(question), FRAME):
            ws.send_bytes(question[i : i + FRAME])
        silence.on.set()
        frames = frames_until(ws, "turn_done")
        transcript = next(f for f in frames if f["type"] == "transcript")
        assert "library" in transcript["payload"]["text"].lower()
        assert frames[-1]["payload"] == {"status": "done"}
