"""The app dies (SIGKILL) and starts again while a real worker goes on publishing a session's
events: a client that comes back with the last event id it saw gets every event it missed,
exactly once, in the order of the session's stream, then the live ones."""

import json
import time
from urllib.parse import urlencode

import pytest
from websockets.sync.client import ClientConnection, connect

from queues import JobClient, replay, stream_key
from shared_schemas import SynthesisJob, speech_job_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.usefixtures("worker")]


def chat_url(app, hello: dict | None = None, last_event_id: str | None = None) -> str:
    """/ws/chat for a new session, or to come back to the one `hello` (its first `session` frame)
    opened: with its id and the resume secret that frame told (see PROTOCOL.md)."""
    params = {}
    if hello is not None:
        params.update(session_id=hello["session_id"], resume=hello["resume"])
    if last_event_id is not None:
        params["last_event_id"] = last_event_id
    return f"{app.ws_url}/ws/chat" + (f"?{urlencode(params)}" if params else "")


def receive(ws: ClientConnection, timeout: float = 60.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def until_done(ws: ClientConnection, jobs: set[str], timeout: float = 90.0) -> list[dict]:
    """Frames until each job of `jobs` has sent its last event (its last audio)."""
    frames, waiting = [], set(jobs)
    deadline = time.monotonic() + timeout
    while waiting:
        frames.append(receive(ws, max(0.1, deadline - time.monotonic())))
        frame = frames[-1]
        assert frame["type"] != "failed", frame
        if frame["type"] == "audio" and frame["payload"].get("last", True):
            waiting.discard(frame["job_id"])
    return frames


def until_type(ws: ClientConnection, type_: str) -> list[dict]:
    frames = [receive(ws)]
    while frames[-1]["type"] != type_:
        frames.append(receive(ws))
    return frames


def flush(ws: ClientConnection) -> list[dict]:
    """Whatever events are still on their way: everything before the answer to a ping."""
    ws.send(json.dumps({"type": "ping"}))
    return until_type(ws, "pong")[:-1]


def speak_meanwhile(client: JobClient, session_id: str, tag: str, count: int) -> set[str]:
    """Jobs for the session enqueued while no app runs: a worker speaks them into its stream."""
    jobs = [
        SynthesisJob(session_id=session_id, job_id=f"{session_id}-{tag}-{i}", text=f"Missed sentence {i}.", voice="max")
        for i in range(count)
    ]
    for job in jobs:
        client.enqueue(job)
    return {job.job_id for job in jobs}


def stream_ids(connection, settings, session_id: str) -> list[str]:
    return [event.id for event in replay(connection, settings, session_id)]


def wait_until_stored(connection, settings, session_id: str, jobs: set[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while jobs - {e.job_id for e in replay(connection, settings, session_id) if e.terminal}:
        assert time.monotonic() < deadline, "the worker did not speak the jobs"
        time.sleep(0.1)


def test_a_client_gets_every_missed_event_once_and_in_order_across_app_restarts(
    redis_url, settings, connection, app_process
):
    app = app_process(redis_url)
    client = JobClient(settings, connection)
    received: list[dict] = []  # every event frame the client got, over all its connections

    # 1. A turn is under way: its answer is written and its sixteen sentences are queued for
    #    speech when the app is killed.
    text = " ".join(f"This is sentence number {i} of the answer." for i in range(16))
    with connect(chat_url(app)) as ws:
        hello = receive(ws)
        session_id = hello["session_id"]
        ws.send(json.dumps({"type": "text", "text": text, "voice": "max"}))
        received += until_type(ws, "message")
    turn_id = received[0]["job_id"]
    app.kill()
    spoken = {speech_job_id(turn_id, i) for i in range(16)}
    assert spoken - {f["job_id"] for f in received}, "the turn was still speaking when the app died"

    # 2. While no app runs, the worker finishes the turn's speech and speaks more for the session.
    missed = speak_meanwhile(client, session_id, "down-1", 3)
    wait_until_stored(connection, settings, session_id, spoken | missed)
    app.start()

    # 3. The client comes back with the last id it saw: the rest of the turn and the jobs spoken
    #    while the app was down, then a whole new turn, live.
    last = received[-1]["id"]
    with connect(chat_url(app, hello, last)) as ws:
        again = receive(ws)
        assert again["type"] == "session" and again["session_id"] == session_id
        assert again["resumed_after"] == last
        replayed = until_done(ws, (spoken | missed) - {f["job_id"] for f in received})
        # The turn the dead app was running ends for its user: the new app's sweeper says so once
        # the dead one's alive key is gone (web/open_turns.py).
        replayed += until_type(ws, "turn_done")
        ws.send(json.dumps({"type": "text", "text": "Back on track. Carry on.", "voice": "max"}))
        live = until_type(ws, "turn_done")
        received += replayed + live + flush(ws)
    assert {f["job_id"] for f in replayed} >= missed
    interrupted = replayed[-1]
    assert interrupted["job_id"] == turn_id and interrupted["payload"]["status"] == "failed"
    assert interrupted["payload"]["error"]["code"] == "interrupted"
    assert "restarted" in interrupted["payload"]["error"]["message"]
    assert live[-1]["payload"] == {"status": "done"}

    # 4. Killed between turns, with jobs of the session queued; the client comes back while the
    #    worker may still be speaking them: what it missed is replayed, the rest comes live.
    app.kill()
    more = speak_meanwhile(client, session_id, "down-2", 6)
    app.start()
    last = received[-1]["id"]
    with connect(chat_url(app, hello, last)) as ws:
        assert receive(ws)["resumed_after"] == last
        received += until_done(ws, more) + flush(ws)

    ids = [f["id"] for f in received]
    assert all(ids), "only events of the conversation (they carry an id) were received"
    assert ids == stream_ids(connection, settings, session_id), "each event once, in the stream's order"
    assert connection.xlen(stream_key(settings, session_id)) == len(ids)
