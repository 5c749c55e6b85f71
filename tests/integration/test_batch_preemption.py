"""Realtime work never waits for a batch file, and a batch file can be cancelled.

The issue's case scaled down: a two-minute file on /api/transcriptions with a 30 s time limit and
one worker. A realtime job posted while the file is being transcribed waits for at most the piece
the worker is on (VAD spans of at most 30 s), not for the whole file; the file still finishes, on
the same job. A running file cancelled over the API stops at the end of its current piece, and a
waiting one cancelled from the CLI never runs. A real worker process (python -m voice_worker) on
queues of this module's own, the app in this process, flite speech.
"""

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from queues import QueueSettings, replay
from shared_schemas import Event, EventType
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[2]

# About two minutes in flite's slt voice: six pieces.
MEETING = (
    "The council met early on a cold morning in the old hall by the river. Ada opened the meeting with a "
    "short report on the harvest, which had been better than anyone expected. Iris asked whether the new "
    "bridge could be finished before the spring floods arrived. Angus doubted it, pointing to the cost of "
    "timber and the shortage of skilled carpenters in the valley. Max listened to each of them and then "
    "asked for numbers: how many workers, how many weeks, and how much money remained in the treasury "
    "after the winter. Ada said that forty workers could finish the frame in six weeks if the weather held. "
    "Iris suggested borrowing carpenters from the northern villages in exchange for grain. Angus warned "
    "that the northern villages had broken their promises twice before, and that a bridge half built was "
    "worse than no bridge at all. The chair proposed a vote. Three members agreed to start the work at "
    "once, and one asked that his doubts be written down in the record. After the vote the council turned "
    "to the school, whose roof leaked in every storm, and to the mill, whose wheel had cracked in the frost. "
    "Iris offered to draw plans for a new wheel, and Ada promised to find the money for the roof by selling "
    "the old grain store on the hill. A farmer at the back of the hall stood up to complain about the road "
    "to the market, which turned to mud every autumn and swallowed the wheels of his cart. Angus agreed "
    "with him for once and said the road mattered more than the bridge to most families in the valley. "
    "Max asked the clerk to count the carts that used the road each week and to bring the figures to the "
    "next meeting. Before they parted, the chair reminded everyone that the market would open on Saturday, "
    "that the first boats of the season were expected on Monday, and that the lamps along the harbour "
    "needed new wicks before the dark evenings came back. The clerk read the list of letters that had "
    "arrived since the last meeting: one from the bishop about the bells, one from a merchant who wanted to "
    "rent the empty warehouse, and one from a child who asked for a swing in the square. The council "
    "laughed at the last one and then voted, all four of them, to build the swing before anything else. "
    "Ada closed the book, Angus put out the candles, and Iris was already drawing the swing on the back of "
    "the agenda as they walked out into the snow."
)


@dataclass
class Stack:
    settings: QueueSettings
    env: dict[str, str]
    client: TestClient
    worker_log: Path
    start_worker: Callable[..., subprocess.Popen]

    @property
    def redis(self) -> redis.Redis:
        return self.settings.connect()


@pytest.fixture(scope="module")
def meeting(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("meeting") / "meeting.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", MEETING, "-o", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture
def stack(own_env, tmp_path, workers):
    env = {
        **own_env,
        "COUNCIL_TRANSCRIBE_TIMEOUT_S": "30",  # the 600 s, scaled down with the file
        "COUNCIL_RETRIES": "2",
        "WORKER_THREADS": "2",
        "WORKER_LISTENERS": "0",
    }
    started: list[subprocess.Popen] = []

    def start_worker(log: Path, **extra: str) -> subprocess.Popen:
        started.append(workers.start(log, {**env, **extra}))
        return started[-1]

    log = tmp_path / "worker.log"
    start_worker(log)  # one worker, as `make run` had
    settings = QueueSettings.from_env(env)
    try:
        with TestClient(create_app(AppSettings(queues=settings))) as client:
            yield Stack(settings, env, client, log, start_worker)
    finally:
        for proc in started:
            workers.stop(proc)


def post(client: TestClient, name: str, data: bytes) -> str:
    response = client.post("/api/transcriptions", files=[("files", (name, data, "audio/wav"))])
    assert response.status_code == 202, response.text
    return response.json()["batch_id"]


def file_state(client: TestClient, batch_id: str) -> dict:
    return client.get(f"/api/transcriptions/{batch_id}").json()["files"][0]


def wait_for(what, timeout_s: float = 60, every_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while not (found := what()):
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(every_s)
    return found


def piece_progress(event: Event) -> bool:
    """A piece's end: a progress event that carries no segments (those go out as decoded, #24)."""
    return event.type is EventType.PROGRESS and not event.payload.segments


def progress_times(stack: Stack, batch_id: str) -> list[datetime]:
    events = replay(stack.redis, stack.settings, f"batch-{batch_id}")
    return [e.time for e in events if piece_progress(e)]


def longest_piece(started: datetime, times: list[datetime]) -> float:
    """The longest stretch between two pieces' ends (the first from when the file started)."""
    marks = [started, *times]
    return max((b - a).total_seconds() for a, b in zip(marks, marks[1:], strict=False))


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).split()


def test_a_realtime_job_waits_for_one_piece_of_a_long_file_at_most(stack, meeting):
    client = stack.client
    batch_id = post(client, "meeting.wav", meeting)
    wait_for(lambda: file_state(client, batch_id)["state"] == "started")
    began, began_wall = time.perf_counter(), datetime.now().astimezone()

    asked = time.perf_counter()
    spoken = client.post("/api/speech", json={"text": "The bridge opens on Monday.", "voice": "max"})
    waited = time.perf_counter() - asked
    assert spoken.status_code == 200, spoken.text

    done = wait_for(lambda: (f := file_state(client, batch_id))["state"] in ("finished", "failed") and f, 120)
    whole = time.perf_counter() - began
    assert done["state"] == "finished", done
    heard = words(done["text"])
    assert heard[:5] == words(MEETING)[:5] and "snow" in heard[-4:]
    times = progress_times(stack, batch_id)
    longest = longest_piece(began_wall, times)
    print(
        f"\na realtime job posted while a {len(times)}-piece two-minute file was transcribed waited {waited:.2f} s "
        f"(longest piece {longest:.2f} s; the whole file took {whole:.1f} s)"
    )
    assert waited <= longest + 1.0, f"waited {waited:.2f} s; one piece takes at most {longest:.2f} s"
    assert "work waits in" in stack.worker_log.read_text()  # the file paused for it


def test_a_running_file_stops_within_one_piece_and_a_waiting_one_never_runs(stack, meeting, flite):
    client = stack.client
    running = post(client, "meeting.wav", meeting)
    wait_for(lambda: file_state(client, running)["state"] == "started")
    began_wall = datetime.now().astimezone()
    waiting = post(client, "memo.wav", flite("bring the quarterly report"))  # behind the long file
    wait_for(lambda: progress_times(stack, running))  # the first piece is done

    cli = subprocess.run(
        [sys.executable, "-m", "queues", "cancel", waiting],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"{waiting}-000\tcanceled" in cli.stdout

    asked = time.perf_counter()
    response = client.delete(f"/api/transcriptions/{running}")
    assert response.status_code == 202, response.text
    assert response.json()["files"] == [{"job_id": f"{running}-000", "filename": "meeting.wav", "cancel": "stopping"}]
    stopped = wait_for(lambda: (f := file_state(client, running))["state"] == "failed" and f, 60)
    stopped_in = time.perf_counter() - asked
    assert stopped["error"]["code"] == "canceled", stopped

    times = progress_times(stack, running)
    events = replay(stack.redis, stack.settings, f"batch-{running}")
    assert events[-1].type is EventType.FAILED and events[-1].payload.code == "canceled"
    assert not [e for e in events if e.type is EventType.TRANSCRIPT]
    assert len(times) < 6  # it did not go on to the end
    longest = longest_piece(began_wall, times)
    print(f"\na running file stopped {stopped_in:.2f} s after DELETE (longest piece {longest:.2f} s)")
    assert stopped_in <= longest + 1.0

    memo = file_state(client, waiting)
    assert memo["state"] == "failed" and memo["error"]["code"] == "canceled"
    assert client.delete(f"/api/transcriptions/{running}").json()["files"][0]["cancel"] == "ended"
    # The worker is free for the next file.
    again = post(client, "memo.wav", flite("bring the quarterly report"))
    done = wait_for(lambda: (f := file_state(client, again))["state"] in ("finished", "failed") and f, 60)
    assert words(done.get("text", "")) == words("bring the quarterly report"), done


def test_a_file_whose_worker_dies_goes_on_from_its_last_piece_on_another(stack, meeting, tmp_path):
    """SIGKILL mid-file: the in-flight list hands the job over (to the restarted child or the other
    worker), the next run goes on from the saved pieces (test_pieces.py shows they are not heard
    again), and what the dead worker had published is not delivered twice."""
    client = stack.client
    # The first worker is the one to die: the file is started on it before the survivor starts.
    batch_id = post(client, "meeting.wav", meeting)
    wait_for(lambda: len(progress_times(stack, batch_id)) >= 2)
    job_id = f"{batch_id}-000"
    saved = stack.redis.hkeys(f"{stack.settings.key_prefix}:pieces:{job_id}")
    assert len([f for f in saved if f.startswith(b"piece:")]) >= 2
    victim = stack.redis.hget(f"rq:job:{job_id}", "worker_name").decode()
    stack.start_worker(tmp_path / "survivor.log", WORKER_ALIVE_TTL="3", WORKER_BEAT="1")
    pids = subprocess.run(["pgrep", "-f", "voice_worker --child"], capture_output=True, text=True).stdout.split()
    for pid in pids:  # the victim's child: its name is in its environment
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"WORKER_NAME={victim}".encode() in environ:
            os.kill(int(pid), 9)
            break
    else:
        pytest.fail(f"no child process runs as {victim}")

    done = wait_for(lambda: (f := file_state(client, batch_id))["state"] in ("finished", "failed") and f, 120)
    assert done["state"] == "finished", done
    heard = words(done["text"])
    assert heard[:5] == words(MEETING)[:5] and "snow" in heard[-4:]
    events = replay(stack.redis, stack.settings, f"batch-{batch_id}")
    counted = Counter("piece" if piece_progress(e) else e.type for e in events)
    assert counted["piece"] == 6 and counted[EventType.TRANSCRIPT] == 1, counted
    assert [e.seq for e in events] == list(range(len(events)))  # each once, the dead worker's too
