"""A recording streamed through the real listener (silero, Smart Turn v3.2, Whisper tiny.en, a real
Redis), scored against its text (tests/speech/score.py). Decisions go by audio time, so writing the
whole recording at once gives the decisions a person speaking in real time would get.

    PYTHONPATH=. .venv-worker/bin/python -m tests.voice_worker.listen_offline [recording ...]

prints one JSON line per recording (starting its own Redis); the tests call `hear` with theirs.
"""

import json
import sys
import threading
import uuid

import numpy as np
import redis
import soundfile

from queues import EventPublisher, JobEvents, MicKeys, QueueSettings
from shared_schemas import STT_SAMPLE_RATE, ListenJob
from tests.speech import RECORDINGS, Recording
from tests.speech.score import Score, score
from voice_worker.audio import Audio, resample
from voice_worker.engines import Engines
from voice_worker.listening.confirm import ConfirmSettings
from voice_worker.listening.endpointer import EndpointSettings
from voice_worker.listening.listener import Listener, ListenSettings

LEAD_S = 0.5  # silence before the recording
TAIL_S = 3.0  # and after it: the last turn ends and is confirmed
FRAME_MS = 20


def samples(recording: Recording) -> np.ndarray:
    data, rate = soundfile.read(recording.path(), dtype="float32", always_2d=True)
    return resample(Audio(data.mean(axis=1), rate), STT_SAMPLE_RATE).samples.astype(np.float32)


def hear(
    recording: Recording,
    engines: Engines,
    settings: QueueSettings,
    connection: redis.Redis,
    endpoint: EndpointSettings | None = None,
    audio: np.ndarray | None = None,
    confirm: ConfirmSettings | None = None,
) -> tuple[Score, list[dict]]:
    """Stream `recording` (or `audio` with its text) as the app would, listen, score what came out."""
    session, stream_id = f"offline-{uuid.uuid4().hex[:10]}", f"mic-{uuid.uuid4().hex[:10]}"
    keys = MicKeys.of(settings, stream_id)
    speech = samples(recording) if audio is None else audio
    lead = np.zeros(int(LEAD_S * STT_SAMPLE_RATE), np.float32)
    tail = np.zeros(int(TAIL_S * STT_SAMPLE_RATE), np.float32)
    pcm = (np.clip(np.concatenate([lead, speech, tail]), -1, 1) * 32767).astype("<i2").tobytes()
    step = STT_SAMPLE_RATE * 2 * FRAME_MS // 1000
    with connection.pipeline(transaction=False) as pipe:
        for i in range(0, len(pcm), step):
            pipe.xadd(keys.stream, {b"a": pcm[i : i + step]})
        pipe.xadd(keys.stream, {b"c": b"end"})
        pipe.execute()
    job = ListenJob(session_id=session, job_id=stream_id, stream_key=keys.stream, mode="hands_free", turn_prefix="t")
    publisher = EventPublisher(settings, connection)
    listen = ListenSettings(endpoint=endpoint or EndpointSettings(), confirm=confirm or ConfirmSettings(), idle_s=2.0)
    events = JobEvents(publisher, session, stream_id)
    Listener(job, engines, connection, publisher, events, listen, "offline", threading.Event()).run()
    entries = connection.xrange(f"{settings.key_prefix}:stream:{session}")
    got = [json.loads(fields[b"e"]) for _, fields in entries]
    connection.delete(f"{settings.key_prefix}:stream:{session}", keys.stream)
    return score(recording, got, offset_s=LEAD_S), got


def main(names: list[str]) -> None:
    from bench.procs import private_redis
    from voice_worker.stt.whisper import WhisperSTT, default_model_dir
    from voice_worker.turn.smart_turn import SmartTurn
    from voice_worker.vad.silero import SileroVAD

    chosen = [r for r in RECORDINGS if not names or r.name in names]
    engines = Engines(stt=WhisperSTT(default_model_dir(), threads=2), tts=[], vad=SileroVAD(), turn=SmartTurn())
    with private_redis() as url:
        settings = QueueSettings(redis_url=url)
        connection = settings.connect()
        for recording in chosen:
            result, _ = hear(recording, engines, settings, connection)
            print(json.dumps({"recording": recording.name, "human": recording.human, **result.figures()}), flush=True)
            for text in result.transcripts:
                print("   |", text, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
