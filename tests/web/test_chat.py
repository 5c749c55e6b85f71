"""The chat WebSocket against a real Redis and a real voice worker."""

import io
import json
import wave

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def client(settings):
    with TestClient(create_app(AppSettings(queues=settings, responder="echo"))) as c:
        yield c


def until(ws, type_: str, limit: int = 200) -> list[dict]:
    """Frames up to and including the first of `type_`."""
    frames = []
    for _ in range(limit):
        frames.append(ws.receive_json())
        if frames[-1]["type"] == type_:
            return frames
    raise AssertionError(f"no {type_} frame in {limit}: {[f['type'] for f in frames]}")


def test_a_text_turn_streams_its_answer_and_speech(client, chat_path):
    with client.websocket_connect(chat_path()) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "session" and len(hello["session_id"]) >= 32 and len(hello["resume"]) >= 32
        assert {"joe", "max", "ada"} <= set(hello["voices"])
        ws.send_json({"type": "text", "text": "The plan is sound. We start on Monday.", "voice": "max"})
        frames = until(ws, "turn_done")
    types = [f["type"] for f in frames]
    assert types[:3] == ["turn_started", "token", "message"]
    audio = [f for f in frames if f["type"] == "audio"]
    assert [a["payload"]["index"] for a in audio] == [0, 1]
    assert [a["payload"]["text"] for a in audio] == ["The plan is sound.", "We start on Monday."]
    assert all(a["payload"]["member"] == "Echo" and a["payload"]["voice"] == "max" for a in audio)
    assert frames[-1]["payload"] == {"status": "done"}
    ids = [f["id"] for f in frames]
    assert all(ids) and len(set(ids)) == len(ids)
    wav = client.get(audio[0]["payload"]["url"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(wav.content)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(audio[0]["payload"]["duration_s"], abs=0.01)


def test_options_choose_the_voice_of_the_answers_that_follow(client, chat_path):
    """`options` answers nothing and holds for the turns after it (a spoken turn on an open
    microphone takes the choice as it starts: tests/web/test_conversation_page.py)."""
    with client.websocket_connect(chat_path()) as ws:
        ws.receive_json()
        ws.send_json({"type": "options", "voice": "ada", "hear_members": False})
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"  # nothing came before it: no error, no event
        ws.send_json({"type": "text", "text": "The plan is sound."})
        frames = until(ws, "turn_done")
    assert {f["payload"]["voice"] for f in frames if f["type"] == "audio"} == {"ada"}


def test_a_voice_turn_is_transcribed_then_answered(client, flite, chat_path):
    recording = flite("please call me back tomorrow")
    with client.websocket_connect(chat_path()) as ws:
        ws.receive_json()
        ws.send_json({"type": "audio_start", "format": "wav", "voice": "joe"})
        for start in range(0, len(recording), 8192):
            ws.send_bytes(recording[start : start + 8192])
        ws.send_json({"type": "audio_end"})
        frames = until(ws, "turn_done")
    transcript = next(f for f in frames if f["type"] == "transcript")
    assert transcript["payload"]["text"].lower().strip(" .") == "please call me back tomorrow"
    message = next(f for f in frames if f["type"] == "message")
    assert message["payload"]["text"] == transcript["payload"]["text"]
    assert any(f["type"] == "audio" for f in frames)


def test_reconnecting_with_the_last_id_replays_the_rest_once_in_order(client, chat_path):
    with client.websocket_connect(chat_path()) as ws:
        hello = ws.receive_json()
        ws.send_json({"type": "text", "text": "One. Two. Three. Four.", "voice": "iris"})
        seen = [ws.receive_json() for _ in range(2)]
    # Dropped after two events; the turn goes on. Everything is in the stream.
    with client.websocket_connect(chat_path(hello, seen[-1]["id"])) as ws:
        again = ws.receive_json()
        assert again["session_id"] == hello["session_id"] and again["resumed_after"] == seen[-1]["id"]
        assert "resume" not in again  # told once, when the session was made
        rest = until(ws, "turn_done")
    with client.websocket_connect(chat_path(hello, "0")) as ws:
        ws.receive_json()
        everything = until(ws, "turn_done")
    assert [f["id"] for f in seen + rest] == [f["id"] for f in everything]
    assert [f["payload"].get("index") for f in rest if f["type"] == "audio"] == [0, 1, 2, 3]


def test_interrupt_cancels_the_turn_and_its_queued_speech(own, own_env, workers, tmp_path, chat_path):
    """The turn's speech waits on queues of this test's own that no worker serves until the
    interrupt has been answered, so the interrupt always finds every sentence queued, whatever the
    machine's speed. Then a worker starts on those queues: it speaks the next turn and never a
    cancelled sentence."""
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    with TestClient(create_app(AppSettings(queues=own, responder="echo"))) as client:
        with client.websocket_connect(chat_path()) as ws:
            ws.receive_json()
            ws.send_json({"type": "text", "text": text, "voice": "leon"})
            frames = until(ws, "message")
            ws.send_json({"type": "interrupt"})
            frames += until(ws, "turn_cancelled")
            cancelled = frames[-1]["payload"]["cancelled_jobs"]
            assert len(cancelled) == 12, "every sentence was still queued"
            connection = own.connect()
            try:
                assert {
                    Job.fetch(j, connection=connection, serializer=JSONSerializer).get_status() for j in cancelled
                } == {"canceled"}
            finally:
                connection.close()
            worker = workers.start(tmp_path / "worker.log", {**own_env, "COUNCIL_RETRIES": "1", "WORKER_THREADS": "2"})
            try:
                ws.send_json({"type": "text", "text": "After the interrupt.", "voice": "leon"})
                frames += until(ws, "turn_done")
            finally:
                workers.stop(worker)
    spoken = [f for f in frames if f["type"] == "audio"]
    assert [a["payload"]["text"] for a in spoken] == ["After the interrupt."]
    assert not {f["job_id"] for f in spoken} & set(cancelled)


def test_a_stopped_answer_does_not_speak_again_after_a_reload(client, chat_path):
    """Stop, then reload: the session's hello says the stopped answer's playback is over, so the page
    does not resume it (it used to, from the last `played` report before the Stop)."""
    text = " ".join(f"Sentence number {i} is here." for i in range(8))
    with client.websocket_connect(chat_path()) as ws:
        hello = ws.receive_json()
        ws.send_json({"type": "text", "text": text, "voice": "leon"})
        frames = until(ws, "audio")
        turn_id = frames[-1]["payload"]["turn_id"]
        ws.send_json({"type": "played", "turn_id": turn_id, "index": 0, "chunk": 0, "offset_s": 0.0, "done": False})
        ws.send_json({"type": "interrupt", "heard": {"turn_id": turn_id, "index": 0, "chunk": 0, "offset_s": 0.4}})
        ws.send_json({"type": "ping"})
        until(ws, "pong")  # frames are handled in order: the interrupt is done
    with client.websocket_connect(chat_path(hello)) as ws:
        played = ws.receive_json()["played"]
    assert played["turn_id"] == turn_id and played["done"] is True, played


MALFORMED = [
    "not json",
    "{",
    "[]",
    "null",
    "42",
    '"text"',
    "{}",
    '{"type": 7}',
    '{"type": "nope"}',
    '{"type": "text"}',
    '{"type": "text", "text": ""}',
    '{"type": "text", "text": 5}',
    '{"type": "text", "text": "hi", "voice": "../../x"}',
    '{"type": "text", "text": "hi", "extra": 1}',
    '{"type": "audio_start", "format": "exe"}',
    '{"type": "audio_start", "format": null}',
    '{"type": "audio_end"}',
    '{"type": "interrupt", "now": true}',
    '{"type": "ping", "x": 1}',
    json.dumps({"type": "text", "text": "x" * 5000}),
    "x" * (70 * 1024),
    '{"type": ["text"]}',
    '{"type": "TEXT", "text": "hi"}',
    '{"type": "text", "text": null}',
    "\u0000",
    "{'type': 'ping'}",
    '{"type": "text", "text": "hi"',
    '{"type": "audio_start", "voice": 12}',
    "true",
    "[{}]",
]


def test_malformed_frames_get_the_error_shape_and_change_nothing(client, chat_path):
    with client.websocket_connect(chat_path()) as bystander:
        bystander.receive_json()
        with client.websocket_connect(chat_path()) as ws:
            ws.receive_json()
            count = 0
            for frame in MALFORMED:
                ws.send_text(frame)
                count += 1
            for i in range(20):  # binary outside a recording, and bad recordings
                ws.send_bytes(bytes([i]) * 100)
                count += 1
            ws.send_json({"type": "audio_start", "format": "wav"})
            ws.send_json({"type": "audio_start", "format": "wav"})
            ws.send_json({"type": "audio_end"})  # empty recording
            count += 2
            errors = [ws.receive_json() for _ in range(count)]
            assert count >= 50
            for frame in errors:
                assert frame["type"] == "error" and frame["id"] is None
                assert set(frame["error"]) == {"code", "message"} and len(frame["error"]["message"]) > 10
            codes = {f["error"]["code"] for f in errors}
            assert {"bad_frame", "frame_too_large", "bad_state", "empty_audio"} <= codes
            ws.send_json({"type": "ping"})
            assert ws.receive_json()["type"] == "pong"
        bystander.send_json({"type": "ping"})
        assert bystander.receive_json()["type"] == "pong"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("session_id=bad!id", "bad_session"),
        ("session_id=short", "bad_session"),
        ("last_event_id=yesterday", "bad_event_id"),
        ("session_id=abcdefgh12&resume=x&last_event_id=yesterday", "bad_event_id"),
        ("session_id=abcdefgh12&resume=x", "forbidden_session"),
    ],
)
def test_bad_connection_parameters_are_refused(client, query, code):
    with client.websocket_connect(f"/ws/chat?{query}") as ws:
        frame = ws.receive_json()
        assert frame["type"] == "error" and frame["error"]["code"] == code
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_health_and_metrics(client):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["queues"]["realtime"]["workers"] >= 1
    metrics = client.get("/metrics").text
    assert 'council_queue_depth{queue="batch"}' in metrics
    assert "council_sessions" in metrics


def test_a_turn_whose_speech_fails_says_so_when_it_is_done(client, chat_path):
    with client.websocket_connect(chat_path()) as ws:
        ws.receive_json()
        ws.send_json({"type": "text", "text": "First sentence. Second one.", "voice": "nosuchvoice"})
        frames = until(ws, "turn_done")
    done = frames[-1]["payload"]
    assert done["status"] == "done" and done["speech_failed"] == 2
    assert done["error"]["code"] == "unknown_voice" and "Voices:" in done["error"]["message"]


def test_resuming_from_before_what_the_stream_kept_says_so(settings, chat_path):
    """A long conversation outgrows the stream's cap: a client that resumes from before it is
    told where the history it gets begins, not silently given less."""

    from queues import EventPublisher
    from shared_schemas import Event, EventType

    TOKEN = {"member": "Echo", "text": "x"}
    small = settings.model_copy(update={"stream_maxlen": 100})
    with TestClient(create_app(AppSettings(queues=small, responder="echo"))) as c:
        with c.websocket_connect(chat_path()) as ws:
            hello = ws.receive_json()
        publisher = EventPublisher(small, small.connect())
        ids = [
            publisher.publish(
                Event(type=EventType.TOKEN, session_id=hello["session_id"], job_id="turn-x", seq=i, payload=TOKEN)
            ).id
            for i in range(400)
        ]
        with c.websocket_connect(chat_path(hello, ids[0])) as ws:
            assert ws.receive_json()["type"] == "session"
            trimmed = ws.receive_json()
            assert trimmed["type"] == "events_trimmed" and trimmed["id"] is None
            first = ws.receive_json()
            assert first["id"] == trimmed["kept_from"] and first["id"] != ids[1]
        with c.websocket_connect(chat_path(hello, ids[-2])) as ws:  # nothing it needs is gone
            assert ws.receive_json()["type"] == "session"
            assert ws.receive_json()["id"] == ids[-1]


def test_recordings_held_by_the_app_are_capped_all_sockets_together(settings, chat_path, flite):
    """Ten sockets each holding most of a 64 MiB recording took the app to 1 GB: the bytes of
    open recordings are capped for the whole process, and a recording past the cap is refused."""
    app = create_app(AppSettings(queues=settings, responder="echo", max_recording_bytes=1_000_000))
    with TestClient(app) as c, c.websocket_connect(chat_path()) as first, c.websocket_connect(chat_path()) as second:
        first.receive_json(), second.receive_json()
        first.send_json({"type": "audio_start", "format": "wav"})
        second.send_json({"type": "audio_start", "format": "wav"})
        for _ in range(6):
            first.send_bytes(b"\0" * 100_000)
        first.send_json({"type": "ping"})
        assert first.receive_json()["type"] == "pong"  # the first holds 600 kB: fine
        for _ in range(6):
            second.send_bytes(b"\0" * 100_000)
        error = second.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "server_busy"
        assert "stream the microphone" in error["error"]["message"]
        # The first ends its recording; its bytes are let go, and the second may record again.
        first.send_json({"type": "audio_end"})
        until(first, "turn_done")
        second.send_json({"type": "audio_start", "format": "wav"})
        recording = flite("the second one is heard")
        second.send_bytes(recording)
        second.send_json({"type": "audio_end"})
        frames = until(second, "turn_done")
        assert "second" in next(f for f in frames if f["type"] == "transcript")["payload"]["text"].lower()


def test_a_session_whose_events_stop_closes_so_the_page_reconnects(client, chat_path, monkeypatch):
    """When forwarding a session's events fails, the page must not sit on a socket that looks alive
    and says nothing: the server closes it (1011, as the page reconnects on any close) and the
    reconnect replays what the broken one missed."""
    import web.chat
    from shared_schemas import EventType

    real = web.chat.event_frame

    def broken(event, url):
        if event.type is EventType.TOKEN:
            raise RuntimeError("injected: the forwarding of events fails")
        return real(event, url)

    monkeypatch.setattr(web.chat, "event_frame", broken)
    with client.websocket_connect(chat_path()) as ws:
        hello = ws.receive_json()
        ws.send_json({"type": "text", "text": "The plan is sound."})
        with pytest.raises(WebSocketDisconnect) as closed:
            until(ws, "turn_done")
        assert closed.value.code == 1011
    monkeypatch.setattr(web.chat, "event_frame", real)
    with client.websocket_connect(chat_path(hello)) as ws:
        assert ws.receive_json()["type"] == "session"
        frames = until(ws, "turn_done")
    message = next(f for f in frames if f["type"] == "message")  # the answer, as history replays it
    assert message["payload"]["text"] == "The plan is sound." and frames[-1]["payload"] == {"status": "done"}
