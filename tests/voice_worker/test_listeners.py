"""A worker's listeners take listen jobs off RQ's listen queue, several at once, and record each
one's end in RQ with its last event; under load they stay alive, shed interim words, and decide every
turn."""

import dataclasses
import json
import threading
import time
import uuid

import numpy as np
import pytest
import soxr
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import JobClient, MicKeys
from shared_schemas import ListenJob, Transcript, listener_turn_id, new_stream_ids, transcript_job_id
from voice_worker.audio import Audio
from voice_worker.engines import Engines
from voice_worker.listening.pool import Listeners
from voice_worker.settings import WorkerSettings
from voice_worker.turn.smart_turn import SmartTurn

RATE = 16_000


class SlowSTT:
    """Our own seam: the real recognizer, made as slow as on a CPU that other work keeps busy."""

    def __init__(self, stt, delay_s: float) -> None:
        self.stt, self.delay_s, self.name, self.calls = stt, delay_s, stt.name, 0

    def recognize(self, audio: Audio, language: str = "en") -> Transcript:
        self.calls += 1
        time.sleep(self.delay_s)
        return self.stt.recognize(audio, language)


@pytest.fixture(scope="module")
def engines(whisper, silero, espeak) -> Engines:
    return Engines(stt=whisper, tts=[espeak], vad=silero, turn=SmartTurn())


@pytest.fixture
def settings(settings):
    """A listen queue of these tests' own: a worker process other tests started listens on the
    default one."""
    return settings.model_copy(update={"listen_queue": f"listen-{uuid.uuid4().hex[:8]}"})


@pytest.fixture
def listeners(settings, engines):
    pool = Listeners(
        WorkerSettings(queues=settings, listeners=3, listen_idle_s=2.0), engines, f"w-{uuid.uuid4().hex[:6]}"
    )
    pool.start()
    yield pool
    pool.stop()


def open_stream(settings) -> ListenJob:
    session, (stream, prefix) = f"test-{uuid.uuid4().hex[:8]}", new_stream_ids()
    job = ListenJob(
        session_id=session, job_id=stream, stream_key=MicKeys.of(settings, stream).stream, turn_prefix=prefix
    )
    JobClient(settings).enqueue(job)
    return job


def send(connection, job: ListenJob, samples: np.ndarray) -> None:
    pcm = (samples * 32767).astype("<i2").tobytes()
    with connection.pipeline(transaction=False) as pipe:
        for i in range(0, len(pcm), 640):
            pipe.xadd(job.stream_key, {b"a": pcm[i : i + 640]})
        pipe.execute()


def events(connection, settings, session: str) -> list[dict]:
    entries = connection.xrange(f"{settings.key_prefix}:stream:{session}")
    return [json.loads(fields[b"e"]) for _, fields in entries]


def wait_for(connection, settings, session: str, kind: str, timeout_s: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = events(connection, settings, session)
        if any(e["type"] == kind for e in found):
            return found
        time.sleep(0.05)
    pytest.fail(f"no {kind} event; got {[e['type'] for e in events(connection, settings, session)]}")


def test_several_streams_at_once_each_finished_in_rq(settings, connection, listeners, piper):
    speech = piper.synthesize("Good morning.", "joe")
    voice = soxr.resample(speech.samples, speech.sample_rate, RATE).astype(np.float32)
    jobs = [open_stream(settings) for _ in range(3)]
    for job in jobs:
        wait_for(connection, settings, job.session_id, "listening")
    assert listeners.active == 3
    for job in jobs:
        send(connection, job, np.concatenate([np.zeros(RATE // 4, np.float32), voice, np.zeros(RATE, np.float32)]))
        connection.xadd(job.stream_key, {b"c": b"end"})
    for job in jobs:
        found = wait_for(connection, settings, job.session_id, "listen_done")
        assert [e["type"] for e in found].count("turn_started") == 1
        rq_job = Job.fetch(job.job_id, connection=connection, serializer=JSONSerializer)
        deadline = time.monotonic() + 5
        while rq_job.get_status() != "finished" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rq_job.get_status() == "finished"
        assert rq_job.return_value() == {"kind": "listened", "reason": "closed", "turns": 1}
    assert connection.llen(listeners.inflight.key) == 0


def test_a_job_that_is_not_a_listen_job_fails_as_data(settings, connection, listeners):
    queue = Queue(settings.listen_queue, connection=connection, serializer=JSONSerializer)
    session = f"test-{uuid.uuid4().hex[:8]}"
    job = queue.enqueue("os.getpid", job_id=f"bad-{uuid.uuid4().hex[:6]}", meta={"session_id": session})
    (failed,) = [e for e in wait_for(connection, settings, session, "failed")]
    assert failed["job_id"] == job.id and failed["payload"]["code"] == "invalid_payload"
    assert Job.fetch(job.id, connection=connection, serializer=JSONSerializer).get_status() == "failed"


def test_a_stopping_worker_hands_its_open_stream_to_another_that_resumes_it(settings, connection, engines, piper):
    """A restart or a scale-down: the stream goes back to the listen queue with its frames and
    checkpoint, and another worker's listener goes on with it, turn numbers and all."""
    first, second = (
        soxr.resample(c.samples, c.sample_rate, RATE).astype(np.float32)
        for c in (piper.synthesize(q, "joe") for q in ("Good morning.", "Is there parking near the station?"))
    )
    pool = Listeners(WorkerSettings(queues=settings, listeners=2), engines, f"w-{uuid.uuid4().hex[:6]}")
    pool.start()
    job = open_stream(settings)
    try:
        wait_for(connection, settings, job.session_id, "listening")
        send(connection, job, np.concatenate([np.zeros(RATE // 4, np.float32), first, np.zeros(RATE * 2, np.float32)]))
        wait_for(connection, settings, job.session_id, "transcript")
        send(connection, job, second[: len(second) // 2])
        time.sleep(0.3)
    finally:
        pool.stop()
    assert Job.fetch(job.job_id, connection=connection, serializer=JSONSerializer).get_status() == "queued"
    assert connection.lrange(f"rq:queue:{settings.listen_queue}", 0, -1) == [job.job_id.encode()]
    assert connection.get(MicKeys.of(settings, job.job_id).lease) is None  # its app waits for another
    other = Listeners(WorkerSettings(queues=settings, listeners=2), engines, f"w-{uuid.uuid4().hex[:6]}")
    other.start()
    try:
        send(connection, job, np.concatenate([second[len(second) // 2 :], np.zeros(RATE, np.float32)]))
        connection.xadd(job.stream_key, {b"c": b"end"})
        found = wait_for(connection, settings, job.session_id, "listen_done")
    finally:
        other.stop()
    listening = [e["payload"] for e in found if e["type"] == "listening"]
    assert [p["resumed"] for p in listening] == [False, True] and not [e for e in found if e["type"] == "failed"]
    texts = {e["job_id"]: e["payload"]["text"].lower() for e in found if e["type"] == "transcript"}
    first, second = (transcript_job_id(listener_turn_id(job.turn_prefix, n)) for n in (1, 2))
    assert "morning" in texts[first]
    assert "parking" in texts[second] and "station" in texts[second]
    assert Job.fetch(job.job_id, connection=connection, serializer=JSONSerializer).get_status() == "finished"


def test_a_listener_far_behind_real_time_is_not_called_dead_sheds_interim_words_and_loses_no_turn(
    settings, connection, whisper, silero, piper
):
    """Three questions streamed in real time to a listener whose recognizer takes 1.5 s a call: it
    falls seconds behind. Its lease never lapses (the app would call it dead), it skips interim words
    while behind, and it decides all three turns, the last one when the stream is closed right after it
    (while the listener is still behind)."""
    slow = SlowSTT(whisper, 1.5)
    engines = Engines(stt=slow, tts=[], vad=silero, turn=SmartTurn())
    pool = Listeners(WorkerSettings(queues=settings, listeners=1), engines, f"w-{uuid.uuid4().hex[:6]}")
    pool.listen = dataclasses.replace(pool.listen, lease_ms=1500, renew_s=0.3, shed_after_ms=1000)
    questions = ["What time does the library open on Sundays?", "Is there parking near the station?", "Thank you."]
    clips = [soxr.resample(c.samples, c.sample_rate, RATE) for c in (piper.synthesize(q, "joe") for q in questions)]
    pause = np.zeros(int(RATE * 1.6), np.float32)
    last = clips[2][: np.nonzero(np.abs(clips[2]) > 0.01)[0][-1] + 1]  # closed as its last word ends
    audio = np.concatenate([clips[0], pause, clips[1], pause, last])
    pool.start()
    try:
        job = open_stream(settings)
        wait_for(connection, settings, job.session_id, "listening")
        lease, lapses, done = MicKeys.of(settings, job.job_id).lease, [], threading.Event()

        def watch() -> None:  # as the app does, more often: who holds the lease
            while not done.is_set():
                with connection.pipeline(transaction=False) as pipe:
                    held, open_ = pipe.get(lease).exists(job.stream_key).execute()
                if held is None and open_:  # (the stream's key and lease go together at its end)
                    lapses.append(time.monotonic())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        pcm = (audio * 32767).astype("<i2").tobytes()
        started = time.monotonic()
        for n, i in enumerate(range(0, len(pcm), 640)):  # 20 ms frames, at the pace a page sends them
            connection.xadd(job.stream_key, {b"a": pcm[i : i + 640]})
            time.sleep(max(0.0, started + (n + 1) * 0.02 - time.monotonic()))
        connection.xadd(job.stream_key, {b"c": b"end"})
        closed = time.monotonic()
        found = wait_for(connection, settings, job.session_id, "listen_done", timeout_s=90)
        done.set()
        watcher.join(1)
    finally:
        pool.stop()
    done_event = found[-1]["payload"]
    decided = [e for e in found if e["type"] == "turn_started"]
    texts = [e["payload"]["text"].lower() for e in found if e["type"] == "transcript"]
    lags = [e["payload"]["lag_ms"] for e in found if "lag_ms" in e["payload"]]
    print(
        f"\nrecognizer calls {slow.calls}, interim skipped {done_event['shed']}, "
        f"max lag {done_event['max_lag_ms']} ms, "
        f"close -> last turn decided {time.monotonic() - closed:.1f} s, lease lapses {len(lapses)}"
    )
    assert not lapses, f"the lease lapsed {len(lapses)} times while the listener was behind"
    assert done_event["max_lag_ms"] > 1000 and max(lags) > 1000 and done_event["shed"] > 0
    assert len(decided) == 3 and decided[-1]["payload"]["reason"] == "closed"
    assert "library" in texts[0] and "parking" in texts[1] and "thank" in texts[2]


def test_a_listener_stuck_in_one_call_lets_its_lease_lapse(settings, connection, whisper, silero, piper):
    """Behind is alive; stuck is not: a listener that makes no progress at all for `stuck_s` (here one
    recognizer call that never seems to end) stops being renewed, so its app can give the stream to
    another worker."""
    engines = Engines(stt=SlowSTT(whisper, 6.0), tts=[], vad=silero, turn=SmartTurn())
    pool = Listeners(WorkerSettings(queues=settings, listeners=1), engines, f"w-{uuid.uuid4().hex[:6]}")
    pool.listen = dataclasses.replace(pool.listen, lease_ms=600, renew_s=0.2, stuck_s=1.5)
    speech = piper.synthesize("What time does the library open on Sundays?", "joe")
    voice = soxr.resample(speech.samples, speech.sample_rate, RATE).astype(np.float32)
    pool.start()
    try:
        job = open_stream(settings)
        wait_for(connection, settings, job.session_id, "listening")
        lease = MicKeys.of(settings, job.job_id).lease
        assert connection.get(lease) is not None
        send(connection, job, np.concatenate([np.zeros(RATE // 4, np.float32), voice, np.zeros(RATE, np.float32)]))
        started, lapsed = time.monotonic(), None
        while time.monotonic() - started < 5 and lapsed is None:
            if connection.get(lease) is None:
                lapsed = time.monotonic() - started
            time.sleep(0.05)
        assert lapsed is not None and lapsed > 1.5, lapsed  # not before stuck_s without progress
        connection.xadd(job.stream_key, {b"c": b"end"})
        wait_for(connection, settings, job.session_id, "listen_done", timeout_s=30)
    finally:
        pool.stop()


class MeetsTheJobLoop:
    """Our own seam: the real recognizer, whose first call from a listener waits until the job loop
    is inside the same engine's `transcribe`, so the two surely run at once (no lock: see
    voice_worker/stt/base.py)."""

    def __init__(self, stt) -> None:
        self.stt, self.name = stt, stt.name
        self.listening, self.loop_inside = threading.Event(), threading.Event()
        self.overlapped = False

    def recognize(self, audio: Audio, language: str = "en") -> Transcript:
        self.listening.set()
        self.loop_inside.wait(30)
        self.overlapped |= self.loop_busy
        return self.stt.recognize(audio, language)

    loop_busy = False


def test_a_listener_and_the_job_loop_recognize_on_one_engine_at_once(settings, connection, whisper, silero, piper):
    speech = piper.synthesize("Good morning.", "joe")
    voice = soxr.resample(speech.samples, speech.sample_rate, RATE).astype(np.float32)
    long = piper.synthesize(
        "The council met at noon. Each member spoke in turn, and the chair wrote the answer.", "joe"
    )
    alone = whisper.transcribe(long)
    assert "council met at noon" in alone.text.lower()
    stt = MeetsTheJobLoop(whisper)
    engines = Engines(stt=stt, tts=[], vad=silero, turn=SmartTurn())
    pool = Listeners(
        WorkerSettings(queues=settings, listeners=1, listen_idle_s=2.0), engines, f"w-{uuid.uuid4().hex[:6]}"
    )
    pool.start()
    try:
        job = open_stream(settings)
        wait_for(connection, settings, job.session_id, "listening")
        send(connection, job, np.concatenate([np.zeros(RATE // 4, np.float32), voice, np.zeros(RATE, np.float32)]))
        connection.xadd(job.stream_key, {b"c": b"end"})
        assert stt.listening.wait(30), "the listener never recognized"
        stt.loop_busy = True  # the job loop, on this thread: the same engine's transcribe
        stt.loop_inside.set()
        try:
            together = whisper.transcribe(long)
        finally:
            stt.loop_busy = False
        found = wait_for(connection, settings, job.session_id, "listen_done")
    finally:
        pool.stop()
    assert stt.overlapped
    assert together == alone
    (heard,) = [e["payload"]["text"] for e in found if e["type"] == "transcript"]
    assert heard.lower().strip(" .") == "good morning"
