"""A worker killed while it listens to someone: the person is told, and speaks again to another."""

import io
import json
import threading
import time
import wave

import pytest
from starlette.testclient import TestClient

from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
FRAME = 640


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


def test_a_worker_killed_mid_stream_fails_the_stream_saying_so_and_the_next_one_works(pool, piper_speech):
    first = pool.start()
    question = pcm(piper_speech("What time does the library open on Sundays?"))
    app = create_app(AppSettings(queues=pool.settings, responder="echo"))
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
        pool.start()
        silence.on.clear()
        ws.send_json({"type": "listen", "voice": "max"})
        silence.on.set()
        frames_until(ws, "listening")
        silence.on.clear()
        time.sleep(0.05)
        for i in range(0, len(question), FRAME):
            ws.send_bytes(question[i : i + FRAME])
        silence.on.set()
        frames = frames_until(ws, "turn_done")
        transcript = next(f for f in frames if f["type"] == "transcript")
        assert "library" in transcript["payload"]["text"].lower()
        assert frames[-1]["payload"] == {"status": "done"}
