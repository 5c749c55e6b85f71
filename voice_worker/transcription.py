"""Speech to text for one job: fetch the audio, decode, trim and split with the VAD, recognize."""

import logging
from collections.abc import Callable

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
