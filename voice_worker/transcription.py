"""Speech to text for one job: fetch the audio, decode, trim and split with the VAD, recognize.

Each segment goes out in a progress event as the engine decodes it (`STT.stream`), so a client
that streams the transcription sees the text while the rest is recognized. A long file is worked
in pieces (the VAD's spans, at most 30 s each), and between two pieces the job asks `between`
whether to go on. It may raise `Paused`: the worker puts the job back in its
queue and runs the speech and realtime work that waits first (so a conversation waits for at most
one piece of a batch file, never for the whole file), or `Cancelled`. What is done survives in a
`PieceLog` in Redis: the next run, on this worker or another, or after a crash, starts at the first
piece not done, without running the VAD again (the worker that paused also keeps the decoded
audio). The job is the same RQ job throughout, and re-publishing the progress of pieces already
done is harmless: the event script stores each (job, type, seq) once.

`transcribe_together` does several short files in one forward pass, for engines that batch.
"""

import json
import logging
from collections.abc import Callable, Sequence

import redis

from queues import BlobMissing, BlobStore, JobEvents
from shared_schemas import ErrorCode, Progress, Segment, Transcript, TranscriptionJob, payloads

from .audio import Audio, decode
from .engines import Engines
from .errors import VoiceError
from .vad.spans import split_spans

log = logging.getLogger(__name__)


def fetch_audio(blobs: BlobStore, session_id: str, key: str) -> bytes:
    if blobs.owner(key) != session_id:
        raise VoiceError(ErrorCode.BLOB_MISSING, "That audio does not belong to this session.")
    try:
        return blobs.get(key)
    except BlobMissing:
        raise VoiceError(
            ErrorCode.BLOB_MISSING, "The uploaded audio has expired or was never stored. Upload it again."
        ) from None


class Paused(Exception):
    """Raised between two pieces: the job goes back to the front of its queue, its progress kept
    in its PieceLog, and runs on from there once the work that waits has run."""


class Cancelled(Exception):
    """Raised between two pieces (or as a run starts) when someone cancelled the running job."""


class PieceLog:
    """The pieces a long transcription has done, in a Redis hash: its spans, and each finished
    piece's segments. It lives as long as the uploaded audio; the job deletes it when it ends."""

    def __init__(self, connection: redis.Redis, key: str, ttl_s: int, cancel_key: str | None = None) -> None:
        self.connection = connection
        self.key = key
        self.ttl_s = ttl_s
        self.cancel_key = cancel_key

    def load(self) -> tuple[list[tuple[float, float]] | None, dict[int, list[Segment]]]:
        """The spans (None: not split yet) and the segments of each piece done, by index. Raises
        Cancelled when the job was cancelled before this run began."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key)
            if self.cancel_key is not None:
                pipe.exists(self.cancel_key)
            saved, *cancelled = pipe.execute()
        if any(cancelled):
            raise Cancelled("cancelled before this run began")
        if b"spans" not in saved:
            return None, {}
        spans = [(float(a), float(b)) for a, b in json.loads(saved[b"spans"])]
        done = {
            int(field[6:]): [Segment.model_validate(s) for s in json.loads(value)]
            for field, value in saved.items()
            if field.startswith(b"piece:")
        }
        return spans, done

    def start(self, spans: Sequence[tuple[float, float]]) -> None:
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, "spans", json.dumps([list(span) for span in spans]))
            pipe.expire(self.key, self.ttl_s)
            pipe.execute()

    def piece(self, index: int, segments: Sequence[Segment]) -> None:
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, f"piece:{index}", json.dumps([s.model_dump(mode="json") for s in segments]))
            pipe.expire(self.key, self.ttl_s)
            pipe.execute()

    def clear(self) -> None:
        self.connection.delete(self.key)


# The decoded audio of the file this worker paused last, by job id: resuming it here decodes nothing.
_paused_audio: dict[str, Audio] = {}


def transcribe(
    job: TranscriptionJob,
    engines: Engines,
    blobs: BlobStore,
    events: JobEvents,
    on_progress: Callable[[float], None] = lambda fraction: None,
    log: PieceLog | None = None,
    between: Callable[[], None] | None = None,
) -> Transcript:
    """The job's transcript. With `log`, a file of several pieces keeps its progress there; with
    `between`, called after each piece but the last, the job may be paused or cancelled there."""
    stt = engines.recognizer()
    if job.task == "translate":
        raise VoiceError(ErrorCode.INVALID_PAYLOAD, cannot_translate(stt.name, stt.capabilities.languages))
    spans, done = log.load() if log is not None else (None, {})
    audio = _paused_audio.pop(job.job_id, None) or decode(fetch_audio(blobs, job.session_id, job.audio_key), job.format)
    if spans is None:
        spans = [(0.0, audio.duration_s)]
        if job.vad and engines.vad is not None:
            spans = split_spans(engines.vad.speech_spans(audio), total_s=audio.duration_s)
        if job.turn_id is not None and spans and spans[-1][1] - spans[0][0] <= LIVE_TURN_S:
            return _turn(job, engines, audio, spans[0][0], spans[-1][1])
        if log is not None and len(spans) > 1:
            log.start(spans)
    segments: list[Segment] = []
    total = audio.duration_s
    for index, (start, end) in enumerate(spans):
        if index in done:
            part_segments = done[index]
            for segment in part_segments:  # the events of the run that did it: each stored once
                _emit_segment(events, segment, total)
        else:
            rate = audio.sample_rate
            piece = Audio(audio.samples[int(start * rate) : int(end * rate)], rate)
            part_segments = []
            for segment in stt.stream(piece, job.language, offset_s=start):
                part_segments.append(segment)
                _emit_segment(events, segment, total)
            if log is not None and len(spans) > 1:
                log.piece(index, part_segments)
        segments.extend(part_segments)
        if len(spans) > 1:  # for a piece done in an earlier run, the same event: stored once
            progress = Progress(done=end, total=audio.duration_s)
            events.emit(payloads.Progress(**progress.model_dump()))
            if index not in done:
                on_progress(progress.fraction)
        if between is not None and index + 1 < len(spans) and index not in done:
            try:
                between()
            except Paused:
                _paused_audio.clear()
                _paused_audio[job.job_id] = audio
                raise
    if log is not None:
        log.clear()
    return Transcript(
        text=" ".join(s.text.strip() for s in segments if s.text.strip()),
        language=job.language,
        duration_s=round(audio.duration_s, 3),
        segments=segments,
        engine=stt.name,
    )


def cannot_translate(engine: str, languages: Sequence[str]) -> str:
    """Why a translation job is refused: no engine of ours translates (Whisper tiny.en and
    Parakeet know English only)."""
    if tuple(languages) == ("en",):
        return (
            f"The workers' speech recognizer ({engine}) knows only English, so it cannot translate. English speech "
            "needs no translation: send it to /v1/audio/transcriptions."
        )
    return (
        f"The workers' speech recognizer ({engine}) transcribes but does not translate: use /v1/audio/transcriptions."
    )


def _emit_segment(events: JobEvents, segment: Segment, total_s: float) -> None:
    """A segment as soon as it is decoded, in a progress event: a streamed transcription
    (/v1's stream=true) sends its text on while the rest of the file is being recognized."""
    progress = Progress(done=min(segment.end, total_s), total=total_s, segments=[segment])
    events.emit(payloads.Progress(**progress.model_dump()))


def _turn(job: TranscriptionJob, engines: Engines, audio: Audio, start: float, end: float) -> Transcript:
    """A recorded turn of a conversation: its speech in one call of the engine's live path (what
    the person said is what counts; word times may be left out)."""
    rate = audio.sample_rate
    piece = Audio(audio.samples[int(start * rate) : int(end * rate)], rate)
    heard = engines.recognizer().recognize(piece, job.language)
    segments = [s.model_copy(update={"start": s.start + start, "end": s.end + start}) for s in heard.segments]
    return heard.model_copy(update={"duration_s": round(audio.duration_s, 3), "segments": segments})


# A recorded conversation turn up to this long takes the engine's live path (`STT.recognize`).
LIVE_TURN_S = 24.0
# Longer files, or files the VAD splits in several pieces, are recognized alone (with progress).
MAX_BATCHED_S = 30.0


def transcribe_together(jobs: Sequence[TranscriptionJob], engines: Engines, blobs: BlobStore) -> dict[str, Transcript]:
    """Transcripts of the jobs that can share one forward pass, by job id. A job left out (bad or
    missing audio, too long, another language) runs alone and meets its own error there."""
    language = jobs[0].language if jobs else "en"
    ready: list[tuple[TranscriptionJob, Audio, float, float]] = []  # job, clip, offset, whole duration
    for job in jobs:
        if job.language != language or job.task != "transcribe":
            continue
        try:
            audio = decode(fetch_audio(blobs, job.session_id, job.audio_key), job.format)
        except VoiceError:
            continue
        if audio.duration_s > MAX_BATCHED_S:
            continue
        start, end = 0.0, audio.duration_s
        if job.vad and engines.vad is not None:
            spans = split_spans(engines.vad.speech_spans(audio), total_s=audio.duration_s)
            if len(spans) != 1:
                continue
            start, end = spans[0]
        piece = Audio(audio.samples[int(start * audio.sample_rate) : int(end * audio.sample_rate)], audio.sample_rate)
        ready.append((job, piece, start, audio.duration_s))
    if len(ready) < 2:
        return {}
    stt = engines.recognizer()
    parts = stt.transcribe_many([r[1] for r in ready], language, [r[2] for r in ready])
    log.info("transcribed %d files in one batch", len(ready))
    return {
        job.job_id: Transcript(
            text=" ".join(s.text.strip() for s in part.segments if s.text.strip()),
            language=language,
            duration_s=round(duration_s, 3),
            segments=part.segments,
            engine=stt.name,
        )
        for (job, _, _, duration_s), part in zip(ready, parts, strict=True)
    }
