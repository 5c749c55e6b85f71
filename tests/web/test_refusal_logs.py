"""Expected refusals are logged at info with their code, never as error tracebacks (#22, break 7:
163 in one run): a budget or quota refusal over REST, a frame the client got wrong, a microphone
past the user's cap, and a client that vanishes mid-`listen`. Real Redis and a real worker."""

import logging
import time
import uuid

import pytest
from starlette.testclient import TestClient

from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(90)]
FRAME = b"\0\0" * 320


def test_refusals_and_a_vanished_listener_leave_info_lines_not_tracebacks(settings, chat_path, flite, caplog):
    tokens = {f"mallory{uuid.uuid4().hex[:6]}": uuid.uuid4().hex}
    (user,) = tokens
    app = create_app(
        AppSettings(queues=settings, responder="echo", api_users=tokens, blob_quota_bytes=1000, max_streams_per_user=1)
    )
    caplog.set_level(logging.INFO)
    with TestClient(app, headers={"Authorization": f"Bearer {tokens[user]}"}) as client:
        files = [("files", ("memo.wav", flite("a memo to keep"), "audio/wav"))]
        assert client.post("/api/transcriptions", files=files).status_code == 429  # audio_quota
        with client.websocket_connect(chat_path(token=tokens[user])) as ws:
            ws.receive_json()
            ws.send_text("{not json")
            assert ws.receive_json()["error"]["code"] == "bad_frame"
            ws.send_json({"type": "listen"})
            assert ws.receive_json()["type"] == "mic"
            for _ in range(25):
                ws.send_bytes(FRAME)
            with client.websocket_connect(chat_path(token=tokens[user])) as second:
                second.receive_json()
                second.send_json({"type": "listen"})
                assert second.receive_json()["error"]["code"] == "rate_limited"
        # The first socket vanished mid-listen (closed without listen_end).
        time.sleep(1.0)
    records = caplog.records
    tracebacks = [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [(r.name, r.getMessage()) for r in tracebacks]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    for code in ("audio_quota", "bad_frame", "rate_limited"):
        assert any(f"({code})" in line for line in infos), (code, infos)
