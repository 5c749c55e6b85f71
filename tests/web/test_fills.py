"""One user cannot fill Redis for everyone (#22, break 1): the answers' speech counts against the user
who asked, within a share of Redis's maxmemory; past it their turns end `audio_quota` while another
user's turn is answered and spoken; clips heard are freed at once. A real worker speaks the answers."""

import time
import uuid

import pytest
from starlette.testclient import TestClient

from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(240)]

HEADROOM = 100 * 2**20
# An answer of ~1,000 characters in ten sentences (espeak: ~2.5 MB of clips).
LONG = " ".join(
    f"Sentence {n} of a long answer goes on and on about the weather, the rates and the house." for n in range(11)
)


def until(ws, type_: str, limit: int = 400) -> list[dict]:
    frames = []
    for _ in range(limit):
        frames.append(ws.receive_json())
        if frames[-1]["type"] == type_:
            return frames
    raise AssertionError(f"no {type_} frame in {limit}: {[f['type'] for f in frames]}")


@pytest.fixture
def limited(connection):
    """The test run's Redis with a maxmemory HEADROOM above what it holds now (noeviction)."""
    old = connection.config_get("maxmemory")["maxmemory"], connection.config_get("maxmemory-policy")["maxmemory-policy"]
    connection.config_set("maxmemory-policy", "noeviction")
    connection.config_set("maxmemory", connection.info("memory")["used_memory"] + HEADROOM)
    yield int(connection.config_get("maxmemory")["maxmemory"])
    connection.config_set("maxmemory", old[0])
    connection.config_set("maxmemory-policy", old[1])


def test_one_user_flooding_long_answers_is_stopped_at_their_share_and_another_is_answered(
    settings, connection, limited, chat_path
):
    mallory, victim = (f"{name}{uuid.uuid4().hex[:6]}" for name in ("mallory", "victim"))
    tokens = {mallory: uuid.uuid4().hex, victim: uuid.uuid4().hex}
    app = create_app(AppSettings(queues=settings, responder="echo", api_users=tokens))
    share = int(limited * 0.1)  # COUNCIL_STORAGE_USER_SHARE's default
    with TestClient(app) as client:
        outcomes, turns = [], []
        with client.websocket_connect(chat_path(token=tokens[mallory])) as ws:
            ws.receive_json()
            for _ in range(20):  # 50 MB of speech, were nothing refused
                ws.send_json({"type": "text", "text": LONG, "voice": "max"})
                frames = until(ws, "turn_done")
                done = frames[-1]["payload"]
                outcomes.append(done.get("error", {}).get("code") or done["status"])
                turns.append(frames[-1]["job_id"])
                if done["status"] == "failed":
                    break
            assert outcomes[-1] == "audio_quota", outcomes
            assert "done" in outcomes  # answered and spoken, up to the share
            stored = sum(int(v) for v in connection.mget(connection.keys(f"{settings.key_prefix}:stored:{mallory}:*")))
            assert share // 2 < stored <= share + len(LONG) * 2752  # within one answer of it
            used = connection.info("memory")["used_memory"]
            assert used < limited * 0.9, (used, limited)  # Redis is nowhere near full

            # Another user, meanwhile: answered and spoken.
            with client.websocket_connect(chat_path(token=tokens[victim])) as other:
                other.receive_json()
                asked = time.monotonic()
                other.send_json({"type": "text", "text": "Is the service still up? Say so.", "voice": "max"})
                frames = until(other, "turn_done")
                took = time.monotonic() - asked
            print(
                f"fill: {len(outcomes)} turns, the last refused audio_quota at {stored / 2**20:.1f} MiB "
                f"(share {share / 2**20:.1f} MiB of maxmemory {limited / 2**20:.0f} MiB); Redis used "
                f"{used / 2**20:.0f} MiB; another user's turn done in {took:.2f} s"
            )
            assert frames[-1]["payload"]["status"] == "done"
            assert [f for f in frames if f["type"] == "audio"]

            # Mallory's page plays her answers to the end (and stops the first one): their clips are
            # freed, all of them, and she may go on.
            ws.send_json({"type": "interrupt", "heard": {"turn_id": turns[0], "index": 1}})
            for turn_id in turns[1:]:
                ws.send_json({"type": "played", "turn_id": turn_id, "index": 0, "done": True})
            ws.send_json({"type": "ping"})
            until(ws, "pong")
            held = connection.mget(connection.keys(f"{settings.key_prefix}:stored:{mallory}:*"))
            assert sum(int(v) for v in held) == 0
            assert not connection.keys(f"{settings.key_prefix}:clips:*:{turns[0]}")
            ws.send_json({"type": "text", "text": LONG, "voice": "max"})
            assert until(ws, "turn_done")[-1]["payload"]["status"] == "done"
