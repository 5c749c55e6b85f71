"""Usage over HTTP, and the ledger of a whole turn: a spoken question through the real voice
worker, the scripted council, and the worker speaking the answer. What the ledger holds must be
what was metered: the scripted models' tokens, the worker's audio seconds and characters."""

import csv
import io
import time
import uuid

import pytest
import redis
from langchain_core.messages import AIMessage
from starlette.testclient import TestClient

from billing import COLUMNS, Charge, Ledger
from council import OLLAMA_MEMBERS_FILE, CouncilResponder, CouncilSettings, load_members
from council.scripted import Scripted, usage
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def users() -> dict[str, str]:
    """Three users of this test's own (the ledger is shared): two people and an operator."""
    tag = uuid.uuid4().hex[:8]
    return {f"alice-{tag}": f"tok-a-{tag}", f"bob-{tag}": f"tok-b-{tag}", f"root-{tag}": f"tok-r-{tag}"}


def make_client(settings, users, **council_options):
    council = load_members(OLLAMA_MEMBERS_FILE)
    models = {m.name: Scripted(script=[f"{m.name} weighs it. It depends on cost."]) for m in council.members}
    models[council.chair.name] = Scripted(script=["Hello to you too. The council is listening."])
    operators = tuple(u for u in users if u.startswith("root-"))
    council_settings = CouncilSettings(member_timeout_s=5, chair_timeout_s=5, operators=operators, **council_options)
    app = create_app(
        AppSettings(queues=settings, council=council_settings, api_users=users),
        make_responder=lambda aredis: CouncilResponder(council_settings, council, models, aredis),
    )
    return TestClient(app), models


def frames_until(ws, type_: str, limit: int = 400) -> list[dict]:
    frames = []
    while len(frames) < limit:
        frames.append(ws.receive_json())
        if frames[-1]["type"] == type_:
            return frames
    raise AssertionError([f["type"] for f in frames])


def settled(connection: redis.Redis, user: str, jobs: int) -> list[dict]:
    """The user's ledger once the worker has recorded `jobs` jobs (it does so as each one ends)."""
    ledger = Ledger(connection)
    deadline = time.monotonic() + 10
    while True:
        entries = ledger.entries(user=user)
        if sum(e["kind"] in ("stt", "tts") for e in entries) >= jobs or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_the_ledger_of_a_spoken_turn_matches_what_was_metered(settings, connection, users, flite):
    alice, token = next(iter(users.items()))
    client, models = make_client(settings, users)
    with client, client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ws.send_json({"type": "audio_start", "format": "wav"})
        ws.send_bytes(flite("hello there"))
        ws.send_json({"type": "audio_end"})
        frames = frames_until(ws, "turn_done")
        assert frames[-1]["payload"]["status"] == "done", frames[-1]
        turn_id = frames[-1]["job_id"]
        transcript = next(f for f in frames if f["type"] == "transcript")["payload"]
        audio = [f for f in frames if f["type"] == "audio"]
        speech_jobs = {f["job_id"] for f in audio}
        entries = settled(connection, alice, 1 + len(speech_jobs))
        api = client.get("/api/usage", headers={"Authorization": f"Bearer {token}"}).json()
        exported = client.get(f"/api/usage/ledger?format=csv&token={token}")

    # The model calls: the tokens the scripted models reported, call by call.
    llm = [e for e in entries if e["kind"] == "llm"]
    chair = models["Max"]
    assert len(llm) == len(chair.calls) == 1  # "hello there": the fast path, the chair alone
    assert (llm[0]["input_tokens"], llm[0]["output_tokens"]) == tuple(
        usage(chair.calls[0], AIMessage(chair.script[0]))[k] for k in ("input_tokens", "output_tokens")
    )
    # The transcription: the seconds of audio the worker heard, its compute time.
    [stt] = [e for e in entries if e["kind"] == "stt"]
    assert stt["item"] == "whisper" and stt["audio_ms"] == round(transcript["duration_s"] * 1000)
    assert stt["compute_ms"] == stt["cpu_ms"] > 0 and stt["gpu_ms"] == 0
    # The speech: one entry a job, with the characters it spoke and the seconds of audio it made.
    tts = [e for e in entries if e["kind"] == "tts"]
    assert {e["ref"] for e in tts} == speech_jobs
    for entry in tts:
        clips = [f["payload"] for f in audio if f["job_id"] == entry["ref"]]
        assert entry["chars"] == sum(len(c["text"]) for c in clips if c["sentence_done"])
        assert entry["audio_ms"] == round(sum(c["duration_s"] for c in clips) * 1000)
        assert entry["member"] == "Max" and entry["compute_ms"] > 0
    assert sum(e["chars"] for e in tts) == len("Hello to you too. The council is listening.") - 1  # one space between
    assert {e["turn_id"] for e in entries} == {turn_id} and {e["user"] for e in entries} == {alice}

    # The counters agree with the entries, for the user's day and for the turn, and nothing is held.
    ledger = Ledger(connection)
    day, turn = ledger.usage("user", alice), ledger.usage("turn", turn_id)
    for counted in (day, turn):
        assert counted.spent.tokens == sum(e["tokens"] for e in entries)
        assert counted.spent.seconds == pytest.approx(sum(e["seconds"] for e in entries))
        assert counted.spent.money == pytest.approx(sum(e["money"] for e in entries))
        assert counted.quantities["chars"] == sum(e["chars"] for e in entries)
    assert day.held.tokens == day.held.seconds == day.held.money == 0
    assert day.spent.money > 0  # the default price table charges CPU time
    # ... and so do the usage page and the CSV export.
    assert api["user"] == alice and api["spent"] == {
        "tokens": day.spent.tokens,
        "seconds": day.spent.seconds,
        "money": day.spent.money,
    }
    assert api["members"]["Max"]["tokens"] == llm[0]["tokens"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert exported.headers["content-type"].startswith("text/csv") and list(rows[0]) == list(COLUMNS)
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in entries)


def test_a_user_reads_their_own_usage_and_an_operator_everyone(settings, connection, users, assert_error):
    (alice, a_token), (bob, b_token), (root, r_token) = users.items()
    ledger = Ledger(connection)
    ledger.debit(Charge(kind="llm", item="llama3.2", user=alice, member="Ada", input_tokens=70, output_tokens=30))
    ledger.debit(Charge(kind="tool", item="calculator", user=bob, member="Ada", calls=1))
    client, _ = make_client(settings, users, budget_daily=("1000 tokens",))
    as_alice = {"Authorization": f"Bearer {a_token}"}
    with client:
        mine = client.get("/api/usage", headers=as_alice).json()
        assert mine["spent"]["tokens"] == 100 and mine["limits"] == {"tokens": 1000}
        assert mine["left"] == {"tokens": 900} and mine["members"]["Ada"]["tokens"] == 100
        assert mine["resets_at"].endswith("T00:00:00+00:00")
        assert_error(client.get(f"/api/usage?user={bob}", headers=as_alice), 403, "forbidden")
        assert_error(client.get("/api/usage/ledger?user=*", headers=as_alice), 403, "forbidden")
        assert_error(client.get("/api/usage?member=Ada", headers=as_alice), 403, "forbidden")
        assert_error(client.get("/api/usage?day=yesterday", headers=as_alice), 400, "bad_day")
        assert_error(client.get("/api/usage/ledger?format=xml", headers=as_alice), 400, "bad_format")
        assert_error(client.get("/api/usage"), 401, "unauthorized")
        own = client.get("/api/usage/ledger", headers=as_alice).json()
        assert [e["user"] for e in own["entries"]] == [alice]

        as_root = {"Authorization": f"Bearer {r_token}"}
        everyone = client.get("/api/usage?user=*", headers=as_root).json()["users"]
        assert everyone[alice]["spent"]["tokens"] == 100 and everyone[bob]["quantities"] == {"calls": 1}
        assert client.get(f"/api/usage?user={bob}", headers=as_root).json()["spent"]["tokens"] == 0
        assert client.get("/api/usage?member=Ada", headers=as_root).json()["member"] == "Ada"
        whole = client.get("/api/usage/ledger", headers=as_root).json()["entries"]
        assert {alice, bob} <= {e["user"] for e in whole}
        assert client.get("/api/usage?day=2001-01-01", headers=as_root).json()["spent"]["tokens"] == 0
        metrics = client.get("/metrics", headers=as_root).text
    assert f'council_spend_today{{unit="tokens",user="{alice}"}} 100.0' in metrics


def test_a_turn_over_budget_ends_with_a_clear_error_and_is_counted(settings, users):
    alice, token = next(iter(users.items()))
    client, models = make_client(settings, users, budget_daily=("50 tokens",))
    with client, client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ws.send_json({"type": "text", "text": "Should I buy a house now or wait a year, given the rates?"})
        frames = frames_until(ws, "turn_done")
        metrics = client.get(f"/metrics?token={token}").text
    done = frames[-1]["payload"]
    assert done["status"] == "failed" and done["error"]["code"] == "budget_exceeded"
    assert done["error"]["message"].startswith("Your daily budget has 50 tokens left and this needs about ")
    assert "It resets at 00:00 UTC" in done["error"]["message"]
    assert not [f for f in frames if f["type"] in ("audio", "token")]
    assert all(not m.calls for m in models.values())
    assert 'council_budget_refusals_total{scope="user",unit="tokens"}' in metrics
