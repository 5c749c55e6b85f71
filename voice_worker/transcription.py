"""Speech to text for one job: fetch the audio, decode, trim and split with the VAD, recognize.

`transcribe_together` does several short files in one forward pass, for engines that batch.
"""

import logging
from collections.abc import Callable, Sequence

from queues import BlobMissing, BlobStore, JobEvents
from shared_schemas import ErrorCode, EventType, Progress, Transcript, TranscriptionJob

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


def transcribe(
    job: TranscriptionJob,
    engines: Engines,
    blobs: BlobStore,
    events: JobEvents,
    on_progress: Callable[[float], None] = lambda fraction: None,
) -> Transcript:
    audio = decode(fetch_audio(blobs, job.session_id, job.audio_key), job.format)
    spans = [(0.0, audio.duration_s)]
    if job.vad and engines.vad is not None:
        spans = split_spans(engines.vad.speech_spans(audio), total_s=audio.duration_s)
    if job.turn_id is not None and spans and spans[-1][1] - spans[0][0] <= LIVE_TURN_S:
        return _turn(job, engines, audio, spans[0][0], spans[-1][1])
    segments = []
    for start, end in spans:
        piece = Audio(audio.samples[int(start * audio.sample_rate) : int(end * audio.sample_rate)], audio.sample_rate)
        part = engines.stt.transcribe(piece, job.language, offset_s=start)
        segments.extend(part.segments)
        if len(spans) > 1:
            progress = Progress(done=end, total=audio.duration_s)
            events.emit(EventType.PROGRESS, progress.model_dump(mode="json"))
            on_progress(progress.fraction)
    return Transcript(
        text=" ".join(s.text.strip() for s in segments if s.text.strip()),
        language=job.language,
        duration_s=round(audio.duration_s, 3),
        segments=segments,
        engine=engines.stt.name,
    )


def _turn(job: TranscriptionJob, engines: Engines, audio: Audio, start: float, end: float) -> Transcript:
    """A recorded turn of a conversation: its speech in one call of the engine's live path (what
    the person said is what counts; word times may be left out)."""
    rate = audio.sample_rate
    piece = Audio(audio.samples[int(start * rate) : int(end * rate)], rate)
    heard = engines.stt.recognize(piece, job.language)
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
        if job.language != language:
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
    parts = engines.stt.transcribe_many([r[1] for r in ready], language, [r[2] for r in ready])
    log.info("transcribed %d files in one batch", len(ready))
    return {
        job.job_id: Transcript(
            text=" ".join(s.text.strip() for s in part.segments if s.text.strip()),
            language=language,
            duration_s=round(duration_s, 3),
            segments=part.segments,
            engine=engines.stt.name,
        )
        for (job, _, _, duration_s), part in zip(ready, parts, strict=True)
    }
