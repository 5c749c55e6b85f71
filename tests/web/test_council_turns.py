"""Turns through the router and the council (scripted chat models), over the WebSocket, with a
real voice worker: transcript, deliberation, tokens and each member's speech, in order."""

import pytest
from starlette.testclient import TestClient

from council import OLLAMA_MEMBERS_FILE, CouncilResponder, CouncilSettings, load_members
from council.scripted import Scripted
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.usefixtures("worker")


def make_client(settings, models=None, **council_options):
    council = load_members(OLLAMA_MEMBERS_FILE)
    if models is None:
        models = {m.name: Scripted(script=[f"{m.name} weighs it. It depends on cost."]) for m in council.members}
        models[council.chair.name] = Scripted(script=["We agree: wait a year. Then buy the house."])
    council_settings = CouncilSettings(member_timeout_s=5, chair_timeout_s=5, **council_options)
    app = create_app(
        AppSettings(queues=settings),
        make_responder=lambda aredis: CouncilResponder(council_settings, council, models, aredis),
    )
    return TestClient(app), council


def frames_until(ws, type_: str, limit: int = 400) -> list[dict]:
    frames = []
    while len(frames) < limit:
        frames.append(ws.receive_json())
        if frames[-1]["type"] == type_:
            return frames
    raise AssertionError([f["type"] for f in frames])


def test_a_deliberated_text_turn(settings):
    client, council = make_client(settings, hear_first=False)
    with client, client.websocket_connect("/ws/chat") as ws:
        ws.receive_json()
        ws.send_json({"type": "text", "text": "Should I buy a house now or wait a year, given the rates?"})
        frames = frames_until(ws, "turn_done")
    types = [f["type"] for f in frames]
    assert types[0] == "turn_started"
    routed = next(f for f in frames if f["type"] == "routed")
    assert routed["payload"]["route"] == "council"
    started = [f["payload"]["member"] for f in frames if f["type"] == "member_started"]
    assert set(started) >= {m.name for m in council.members}
    chair = council.chair.name
    audio = [f for f in frames if f["type"] == "audio"]
    # Only the chair is spoken (members are heard on request), in the chair's voice, in order.
    assert {a["payload"]["member"] for a in audio} == {chair}
    assert [a["payload"]["text"] for a in audio] == ["We agree: wait a year.", "Then buy the house."]
    assert [a["payload"]["index"] for a in audio] == [0, 1]
    # The CPU voices do not stream: one chunk per sentence, which ends it.
    assert [(a["payload"]["chunk"], a["payload"]["sentence_done"]) for a in audio] == [(0, True), (0, True)]
    assert audio[0]["payload"]["voice"] == council.chair.voice(("espeak", "piper"), "max")
    chair_tokens = [i for i, f in enumerate(frames) if f["type"] == "token" and f["payload"]["member"] == chair]
    member_done = [i for i, f in enumerate(frames) if f["type"] == "member_done" and f["payload"]["member"] != chair]
    assert max(member_done) < min(chair_tokens) < types.index("audio")
    assert frames[-1]["payload"]["status"] == "done"


def test_a_simple_voice_turn_takes_the_fast_route(settings, flite):
    client, council = make_client(settings)
    recording = flite("hello there")
    with client, client.websocket_connect("/ws/chat") as ws:
        ws.receive_json()
        ws.send_json({"type": "audio_start", "format": "wav", "hear_members": True})
        ws.send_bytes(recording)
        ws.send_json({"type": "audio_end"})
        frames = frames_until(ws, "turn_done")
    types = [f["type"] for f in frames]
    assert types.index("transcript") < types.index("routed") < types.index("audio")
    assert next(f for f in frames if f["type"] == "transcript")["payload"]["text"].lower().startswith("hello")
    assert next(f for f in frames if f["type"] == "routed")["payload"]["route"] == "fast"
    assert "member_started" not in types or all(
        f["payload"]["member"] == council.fast.name for f in frames if f["type"] == "member_started"
    )
    assert frames[-1]["payload"]["status"] == "done"


def test_with_no_llm_the_turn_fails_saying_what_to_do(settings, closed_port=9):
    unreachable = CouncilSettings(
        members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=f"http://127.0.0.1:{closed_port}", check_timeout_s=0.5
    )
    with TestClient(create_app(AppSettings(queues=settings, council=unreachable))) as client:
        health = client.get("/health").json()
        assert health["llm"] and not health["llm"][0]["reachable"]
        with client.websocket_connect("/ws/chat") as ws:
            ws.receive_json()
            ws.send_json({"type": "text", "text": "Should we expand to a second office next year?"})
            frames = frames_until(ws, "turn_done")
    done = frames[-1]["payload"]
    assert done["status"] == "failed" and done["error"]["code"] == "llm_unavailable"
    assert f"127.0.0.1:{closed_port}" in done["error"]["message"]
    assert not [f for f in frames if f["type"] == "audio"]


def test_with_no_llm_server_a_turn_is_refused_at_once_saying_what_to_do(settings, chat_path):
    """The council on Ollama, and nothing listening where its Ollama should be: one clear notice
    (start the model, or COUNCIL_RESPONDER=echo), not a drop-out per member; /health says degraded."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    council_settings = CouncilSettings(members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=nowhere)
    with TestClient(create_app(AppSettings(queues=settings, council=council_settings))) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "COUNCIL_RESPONDER=echo" in health["reason"]
        with client.websocket_connect(chat_path()) as ws:
            assert ws.receive_json()["llm"][0]["ready"] is False
            ws.send_json({"type": "text", "text": "What should we do about the budget?"})
            frames = frames_until(ws, "turn_done")
    assert [f["type"] for f in frames] == ["turn_started", "turn_done"]
    error = frames[-1]["payload"]["error"]
    assert error["code"] == "llm_unavailable" and "COUNCIL_RESPONDER=echo" in error["message"]


def test_the_member_heard_first_is_spoken_when_done_even_without_a_sentence_end(settings):
    """A short model's answer cut at its length ends mid-sentence: the member heard first (hear_first)
    is spoken when its answer is done, before the chair, not after the whole turn."""
    council = load_members(OLLAMA_MEMBERS_FILE)
    models = {m.name: Scripted(script=[f"{m.name} weighs it and it depends on"]) for m in council.members}
    models[council.chair.name] = Scripted(script=["We agree: wait a year. Then buy the house."])
    client, _ = make_client(settings, models)
    with client, client.websocket_connect("/ws/chat") as ws:
        ws.receive_json()
        ws.send_json({"type": "text", "text": "Should I buy a house now or wait a year, given the rates?"})
        frames = frames_until(ws, "turn_done")
    audio = sorted((f["payload"] for f in frames if f["type"] == "audio"), key=lambda a: (a["index"], a["chunk"]))
    spoken = [(a["member"], a["text"]) for a in audio]
    first = spoken[0][0]
    assert first in {m.name for m in council.members}
    assert spoken == [(first, f"{first} weighs it and it depends on"), *((council.chair.name, s) for s in CHAIR_SAYS)]


CHAIR_SAYS = ("We agree: wait a year.", "Then buy the house.")
