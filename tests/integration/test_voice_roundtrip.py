"""From the app's interpreter (3.13) to a real voice worker (3.11) and back, through Redis."""

import asyncio
import io
import re
import struct
import time
import uuid
import wave

import numpy as np
import pytest

from queues import AsyncBlobStore, EventHub, JobClient, ajob_status, areplay, job_status
from shared_schemas import MAX_TEXT_CHARS, EventType, PingJob, SynthesisJob, TranscriptionJob

pytestmark = pytest.mark.usefixtures("worker")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).split()


async def collect(settings, payload, queue=None, timeout=60.0, after_put=None):
    conn = settings.connect_async()
    hub = EventHub(settings, conn)
    await hub.start()
    try:
        return [e async for e in JobClient(settings, aconnection=conn).arun(hub, payload, queue, timeout)]
    finally:
        await hub.close()
        await conn.aclose()


async def put(settings, session_id, data):
    conn = settings.connect_async()
    try:
        return await AsyncBlobStore(settings, conn).put(session_id, data)
    finally:
        await conn.aclose()


async def get(settings, key):
    conn = settings.connect_async()
    try:
        return await AsyncBlobStore(settings, conn).get(key)
    finally:
        await conn.aclose()


def transcribe(settings, session_id, data, **fields):
    key = asyncio.run(put(settings, session_id, data))
    job = TranscriptionJob(
        session_id=session_id, job_id=f"{session_id}-{uuid.uuid4().hex[:6]}", audio_key=key, **fields
    )
    return asyncio.run(collect(settings, job))


def speak(settings, session_id, text, voice):
    job = SynthesisJob(session_id=session_id, job_id=f"{session_id}-{uuid.uuid4().hex[:6]}", text=text, voice=voice)
    return asyncio.run(collect(settings, job))


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768, w.getframerate()


def median_pitch_hz(samples: np.ndarray, rate: int) -> float:
    """Median fundamental frequency of voiced 40 ms frames, by autocorrelation (60–400 Hz)."""
    size, pitches = int(0.04 * rate), []
    for start in range(0, len(samples) - size, size):
        frame = samples[start : start + size] - samples[start : start + size].mean()
        if np.sqrt(np.mean(frame**2)) < 0.02:
            continue
        corr = np.correlate(frame, frame, "full")[size - 1 :]
        lo, hi = rate // 400, rate // 60
        lag = lo + int(np.argmax(corr[lo:hi]))
        if corr[lag] > 0.3 * corr[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


def test_transcribes_a_spoken_sentence(settings, session_id, flite):
    sentence = "the council will meet tomorrow morning to discuss the budget"
    events = transcribe(settings, session_id, flite(sentence))
    assert [e.type for e in events][-1] is EventType.TRANSCRIPT
    transcript = events[-1].payload.model_dump(mode="json")
    assert words(transcript["text"]) == words(sentence)
    assert transcript["engine"] == "whisper"
    assert transcript["duration_s"] > 2
    first_word = transcript["segments"][0]["words"][0]
    assert words(first_word["text"]) == ["the"] and first_word["start"] < first_word["end"]
    assert [e.seq for e in events] == list(range(len(events)))
    status = job_status(settings.connect(), events[-1].job_id)
    assert status.state == "finished" and words(status.result["text"]) == words(sentence)


def test_a_job_has_ended_in_rq_when_its_ending_arrives(settings, session_id):
    """The ending is published in the transaction that records the job's end, so a client that
    asks RQ as soon as it gets the ending never sees the job still running."""

    async def scenario():
        conn = settings.connect_async()
        hub = EventHub(settings, conn)
        await hub.start()
        client = JobClient(settings, aconnection=conn)
        sync = settings.connect()
        states = []
        try:
            for i in range(40):
                job = PingJob(session_id=session_id, job_id=f"{session_id}-ping-{i}")
                [pong] = [e async for e in client.arun(hub, job, None, 30.0)]
                assert pong.type is EventType.PONG
                states.append((await ajob_status(sync, pong.job_id)).state)
        finally:
            await hub.close()
            await conn.aclose()
        return states

    assert asyncio.run(scenario()) == ["finished"] * 40


def test_synthesizes_each_sentence_with_its_length(settings, session_id):
    text = "The council has reached a decision. We will build the bridge."
    events = speak(settings, session_id, text, "joe")
    assert [e.type for e in events] == [EventType.AUDIO, EventType.AUDIO]
    assert [e.payload.last for e in events] == [False, True]
    assert [e.payload.text for e in events] == ["The council has reached a decision.", "We will build the bridge."]
    for event in events:
        samples, rate = wav_samples(asyncio.run(get(settings, event.payload.audio_key)))
        assert rate == event.payload.sample_rate
        assert len(samples) / rate == pytest.approx(event.payload.duration_s, abs=0.01)
        # Speech runs at 2 to 5 words a second, plus a little silence around it.
        n = len(event.payload.text.split())
        assert n / 5 < event.payload.duration_s < n / 2 + 0.8
        assert np.sqrt(np.mean(samples**2)) > 0.01


def test_synthesized_speech_transcribes_back(settings, session_id):
    [clip] = speak(settings, session_id, "Please open the window.", "joe")
    audio = asyncio.run(get(settings, clip.payload.audio_key))
    assert words(transcribe(settings, session_id, audio)[-1].payload.text) == ["please", "open", "the", "window"]


def test_two_members_voices_differ(settings, session_id):
    text = "I think we should look at the evidence before we decide anything."
    pitches = {}
    for voice in ("max", "ada"):
        [clip] = speak(settings, session_id, text, voice)
        pitches[voice] = median_pitch_hz(*wav_samples(asyncio.run(get(settings, clip.payload.audio_key))))
    assert pitches["ada"] > 1.4 * pitches["max"], pitches


def test_bad_input_fails_as_data_and_the_worker_goes_on(settings, session_id, worker, flite):
    silent_wav = io.BytesIO()
    with wave.open(silent_wav, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    truncated = flite("this file is cut short")[:60]
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bytes(40)
    cases = [
        (transcribe, b"\x13\x37 this is not audio at all" * 50, "undecodable_audio"),
        (transcribe, b"", "empty_audio"),
        (transcribe, silent_wav.getvalue(), "empty_audio"),
        (transcribe, truncated, "undecodable_audio"),
        (transcribe, png, "unsupported_format"),
        (speak, ("Hello.", "nobody"), "unknown_voice"),
        (speak, ("word " * (MAX_TEXT_CHARS // 4), "max"), "text_too_long"),
        (speak, ("   ", "max"), "empty_text"),
    ]
    for run, arg, code in cases:
        events = run(settings, session_id, *arg) if run is speak else run(settings, session_id, arg)
        failure = events[-1]
        assert failure.type is EventType.FAILED, (code, failure)
        assert failure.payload.code == code
        assert len(failure.payload.message) > 20
        assert failure.payload.retryable is False
        status = job_status(settings.connect(), failure.job_id)
        assert status.state == "failed" and status.error.code == code
    assert worker.poll() is None
    assert speak(settings, session_id, "Still here.", "max")[-1].type is EventType.AUDIO


def test_events_missed_while_disconnected_arrive_on_reconnect_in_order(settings, session_id):
    async def scenario():
        conn = settings.connect_async()
        client, hub = JobClient(settings, aconnection=conn), EventHub(settings, conn)
        await hub.start()
        [first] = [e async for e in client.arun(hub, PingJob(session_id=session_id, job_id=f"{session_id}-0"))]
        # Nobody listens while these run.
        ids = [f"{session_id}-{i}" for i in range(1, 6)]
        for job_id in ids:
            await client.aenqueue(SynthesisJob(session_id=session_id, job_id=job_id, text="One. Two.", voice="iris"))
        # Until all ten are stored: then every one of them comes from the replay, none live.
        deadline = time.monotonic() + 60
        while len(await areplay(conn, settings, session_id, first.id)) < 10:
            assert time.monotonic() < deadline, "the worker did not run the jobs"
            await asyncio.sleep(0.05)
        async with hub.subscribe(session_id, after=first.id) as sub:
            got = [await sub.get(timeout=30) for _ in range(10)]
            assert not any(sub.live(e) for e in got)
        await hub.close()
        await conn.aclose()
        return got

    got = asyncio.run(scenario())
    assert [(e.job_id, e.payload.text) for e in got] == [
        (j, t) for j in [f"{session_id}-{i}" for i in range(1, 6)] for t in ("One.", "Two.")
    ]
    assert [e.id for e in got] == sorted(e.id for e in got)
