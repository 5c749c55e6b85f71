"""One user's recordings under way are capped, all their sockets together (#22, break 6): four
sockets of one user holding unfinished 64 MiB recordings had taken the app's whole allowance. Past
their share a user's recording is refused `audio_quota`; another user's goes on. No worker needed:
nothing here ends a recording."""

import uuid

from starlette.testclient import TestClient

from web.app import create_app
from web.settings import AppSettings


def test_one_users_recordings_under_way_are_capped_and_another_user_still_records(settings, chat_path):
    tokens = {f"{name}{uuid.uuid4().hex[:6]}": uuid.uuid4().hex for name in ("mallory", "victim")}
    mallory, victim = tokens
    app = create_app(
        AppSettings(
            queues=settings,
            responder="echo",
            api_users=tokens,
            max_recording_bytes=2_000_000,
            max_recording_bytes_per_user=500_000,
        )
    )
    with TestClient(app) as client:
        sockets = [client.websocket_connect(chat_path(token=tokens[mallory])) for _ in range(4)]
        sockets.append(client.websocket_connect(chat_path(token=tokens[victim])))
        mine = [s.__enter__() for s in sockets]
        try:
            for ws in mine:
                ws.receive_json()
                ws.send_json({"type": "audio_start", "format": "wav"})
            *attacker, other = mine
            answers = []
            for ws in attacker:  # 4 x 300 kB: the first fits her 500 kB, the others do not
                for _ in range(3):
                    ws.send_bytes(b"\0" * 100_000)
                ws.send_json({"type": "ping"})
                answers.append(ws.receive_json())
            assert answers[0]["type"] == "pong"
            assert [a["error"]["code"] for a in answers[1:]] == ["audio_quota"] * 3
            assert "COUNCIL_MAX_RECORDING_BYTES_PER_USER" in answers[1]["error"]["message"]
            for _ in range(4):  # 400 kB: within his own share, whatever she holds
                other.send_bytes(b"\0" * 100_000)
            other.send_json({"type": "ping"})
            assert other.receive_json()["type"] == "pong"
        finally:
            for s in reversed(sockets):
                s.__exit__(None, None, None)
