"""A streamed microphone on the chat WebSocket: PCM frames in, the worker's listener deciding where
the turn ends, the answer out (as events, and as binary PCM for a client that asks), against a
real Redis and a real voice worker process."""

import io
import json
import struct
import time
import wave

import pytest
from starlette.testclient import TestClient

from shared_schemas import transcript_job_id
from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(120)]
QUESTION = "What time does the library open on Sundays?"
FRAME = 640  # 20 ms of 16 kHz PCM16


@pytest.fixture
def client(settings):
    with TestClient(create_app(AppSettings(queues=settings, responder="echo"))) as c:
        yield c


def pcm(wav_bytes: bytes) -> bytes:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        return w.readframes(w.getnframes())


def stream(ws, audio: bytes) -> None:
    for i in range(0, len(audio), FRAME):
        ws.send_bytes(audio[i : i + FRAME])


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(16000 * seconds)


def receive(ws) -> dict:
    """The next frame; a binary one as {"type": "binary", "header": ..., "samples": n}."""
    message = ws.receive()
    if message.get("bytes") is not None:
        data = message["bytes"]
        (size,) = struct.unpack("<I", data[:4])
        return {"type": "binary", "header": json.loads(data[4 : 4 + size]), "samples": (len(data) - 4 - size) // 2}
    return json.loads(message["text"])


def until(ws, type_: str, limit: int = 400, keep_sending: bytes | None = None) -> list[dict]:
    frames = []
    for _ in range(limit):
        frames.append(receive(ws))
        if frames[-1]["type"] == type_:
            return frames
    raise AssertionError(f"no {type_} frame in {limit}: {[f['type'] for f in frames]}")


def test_a_hands_free_turn_ends_without_a_click_and_its_answer_streams_as_pcm(client, chat_path, piper_speech):
    question = pcm(piper_speech(QUESTION))
    with client.websocket_connect(chat_path() + "?audio=pcm16") as ws:
        assert receive(ws)["type"] == "session"
        ws.send_json({"type": "listen", "mode": "hands_free", "sample_rate": 16000, "voice": "max"})
        opened = receive(ws)
        assert opened["type"] == "mic" and opened["mode"] == "hands_free" and opened["id"] is None
        stream(ws, silence(0.4) + question + silence(2.0))
        frames = until(ws, "turn_done")
        ws.send_json({"type": "listen_end"})
    types = [f["type"] for f in frames]
    mine = [f for f in frames if f.get("job_id") == opened["stream_id"]]
    assert [f["type"] for f in mine][:2] == ["listening", "speech_started"]
    assert "transcript_partial" in types and types.index("transcript_partial") < types.index("speech_stopped")
    started = next(f for f in frames if f["type"] == "turn_started")
    assert started["payload"]["input"] == "voice" and started["payload"]["stream_id"] == opened["stream_id"]
    transcript = next(f for f in frames if f["type"] == "transcript")
    assert transcript["job_id"] == transcript_job_id(started["job_id"])
    assert "library open" in transcript["payload"]["text"].lower()
    message = next(f for f in frames if f["type"] == "message")
    assert message["job_id"] == started["job_id"] and message["payload"]["text"] == transcript["payload"]["text"]
    # Each live clip: its event, then its samples in a binary frame saying which sentence it is.
    audio = [i for i, f in enumerate(frames) if f["type"] == "audio"]
    assert audio
    for i in audio:
        event, binary = frames[i], frames[i + 1]
        assert binary["type"] == "binary" and binary["header"]["id"] == event["id"]
        assert binary["header"]["index"] == event["payload"]["index"]
        assert binary["header"]["turn_id"] == started["job_id"]
        rate = binary["header"]["sample_rate"]
        assert binary["samples"] / rate == pytest.approx(event["payload"]["duration_s"], abs=0.01)
    assert frames[-1]["payload"] == {"status": "done"}


def test_a_listeners_turn_goes_on_numbered_after_its_turn_started(client, chat_path, piper_speech):
    """The listener (the worker, Python 3.11) publishes a turn's `turn_started`; the app (3.13)
    publishes the rest of the turn: each event of the turn has its own seq, in order from 0."""
    with client.websocket_connect(chat_path()) as ws:
        assert receive(ws)["type"] == "session"
        ws.send_json({"type": "listen", "mode": "hands_free", "sample_rate": 16000, "voice": "max"})
        opened = receive(ws)
        stream(ws, silence(0.4) + pcm(piper_speech(QUESTION)) + silence(2.0))
        frames = until(ws, "turn_done")
        ws.send_json({"type": "listen_end"})
    started = next(f for f in frames if f["type"] == "turn_started")
    assert started["payload"]["stream_id"] == opened["stream_id"] and started["seq"] == 0
    turn = [(f["type"], f["seq"]) for f in frames if f.get("job_id") == started["job_id"]]
    assert [seq for _, seq in turn] == list(range(len(turn))), turn
    assert [kind for kind, _ in turn][-1] == "turn_done" and "message" in dict(turn)


def test_without_asking_for_pcm_a_client_gets_only_the_events(client, chat_path, piper_speech):
    with client.websocket_connect(chat_path()) as ws:
        receive(ws)
        ws.send_json({"type": "text", "text": "Hello there.", "voice": "max"})
        frames = until(ws, "turn_done")
    assert "binary" not in [f["type"] for f in frames] and any(f["type"] == "audio" for f in frames)


def test_push_to_talk_ends_the_turn_when_the_stream_closes(client, chat_path, piper_speech):
    question = pcm(piper_speech("Turn off the lights in the kitchen."))
    with client.websocket_connect(chat_path()) as ws:
        receive(ws)
        ws.send_json({"type": "listen", "mode": "push_to_talk"})
        assert receive(ws)["type"] == "mic"
        stream(ws, silence(0.2) + question + silence(1.5))  # a long pause does not end it
        ws.send_json({"type": "listen_end"})
        frames = until(ws, "turn_done")
    started = [f for f in frames if f["type"] == "turn_started"]
    assert len(started) == 1 and started[0]["payload"]["reason"] == "closed"
    assert "kitchen" in next(f for f in frames if f["type"] == "transcript")["payload"]["text"].lower()


def test_bad_microphone_input_gets_clear_errors_and_the_next_turn_works(client, chat_path, piper_speech):
    with client.websocket_connect(chat_path()) as ws:
        receive(ws)
        ws.send_bytes(b"\0" * FRAME)  # before any stream
        error = receive(ws)
        assert error["type"] == "error" and error["error"]["code"] == "bad_state"
        ws.send_json({"type": "listen", "sample_rate": 48000})
        error = receive(ws)
        assert error["error"]["code"] == "bad_frame" and "16000" in error["error"]["message"]
        ws.send_json({"type": "listen_end"})
        assert receive(ws)["error"]["code"] == "bad_state"
        ws.send_json({"type": "listen"})
        assert receive(ws)["type"] == "mic"
        # (the listener's own events come in between: `until` skips them)
        ws.send_json({"type": "listen"})
        assert until(ws, "error")[-1]["error"]["code"] == "bad_state"
        ws.send_bytes(b"\0" * 641)
        error = until(ws, "error")[-1]
        assert error["error"]["code"] == "bad_frame" and "even" in error["error"]["message"]
        ws.send_json({"type": "audio_start", "format": "wav"})
        assert until(ws, "error")[-1]["error"]["code"] == "bad_state"
        ws.send_json({"type": "listen_end"})
        for _ in range(3):  # after the stream closed: frames that were on their way, refused once
            ws.send_bytes(b"\0" * FRAME)
        frames = until(ws, "error")
        assert frames[-1]["error"]["code"] == "bad_state"
        # Through all that, the session works.
        ws.send_json({"type": "text", "text": "Still here.", "voice": "max"})
        frames = until(ws, "turn_done")
        assert frames[-1]["payload"] == {"status": "done"} and "error" not in [f["type"] for f in frames]


def test_a_client_that_vanishes_mid_stream_leaves_nothing_running(client, chat_path, piper_speech, connection):
    question = pcm(piper_speech(QUESTION))
    with client.websocket_connect(chat_path()) as ws:
        hello = receive(ws)
        ws.send_json({"type": "listen"})
        opened = receive(ws)
        stream(ws, silence(0.3) + question[: len(question) // 2])
        until(ws, "speech_started")
    # The socket is gone: its listener ends the stream as abandoned, and lets its key go.
    deadline = time.monotonic() + 15
    with client.websocket_connect(chat_path(hello, "0")) as ws:
        receive(ws)
        frames = until(ws, "listen_done")
    done = frames[-1]
    assert done["job_id"] == opened["stream_id"] and done["payload"]["reason"] == "gone"
    assert not [f for f in frames if f["type"] == "turn_started"]
    stream_key = f"council:mic:{opened['stream_id']}"
    while connection.exists(stream_key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not connection.exists(stream_key) and not connection.exists(f"{stream_key}:lease")


def test_speaking_on_before_the_answer_is_heard_joins_the_two_into_one_question(settings, chat_path, piper_speech):
    """A pause taken for the end of a turn: the person goes on while the council still thinks.
    The first turn is dropped, and the next answers both parts as one question."""
    from council import OLLAMA_MEMBERS_FILE, CouncilResponder, CouncilSettings, load_members
    from council.scripted import Scripted

    members = load_members(OLLAMA_MEMBERS_FILE)
    models = {m.name: Scripted(script=["Here is what I know."], delay=3.0) for m in members.everyone}
    council_settings = CouncilSettings(critique=False)
    app = create_app(
        AppSettings(queues=settings),
        make_responder=lambda aredis: CouncilResponder(council_settings, members, models, aredis),
    )
    first, second = pcm(piper_speech("What is the weather like?")), pcm(piper_speech("In Paris tomorrow?"))
    with TestClient(app) as c, c.websocket_connect(chat_path()) as ws:
        receive(ws)
        ws.send_json({"type": "listen"})
        # A pause long enough to end the turn whatever the turn model thinks (1.5 s), and short
        # enough that the council (3 s to answer) has not been heard yet.
        stream(ws, silence(0.3) + first + silence(1.8) + second + silence(2.0))
        frames = until(ws, "joined", limit=60)
        joined = frames[-1]
        frames += until(ws, "turn_done")
    started = [f for f in frames if f["type"] == "turn_started"]
    assert len(started) == 2 and joined["job_id"] == started[1]["job_id"]
    assert "weather" in joined["payload"]["text"].lower() and "tomorrow" in joined["payload"]["text"].lower()
    cancelled = [f for f in frames if f["type"] == "turn_cancelled"]
    assert cancelled and cancelled[0]["job_id"] == started[0]["job_id"]
