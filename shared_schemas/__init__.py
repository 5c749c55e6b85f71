"""The contract between the app (Python 3.13) and the voice workers (Python 3.11).

Pydantic models only; they cross as JSON. Import from here, not from the modules.
"""

from .errors import ErrorCode, JobError
from .events import Event, EventType
from .jobs import JobPayload, ListenJob, PingJob, SynthesisJob, TranscriptionJob
from .limits import (
    AUDIO_FORMATS,
    MAX_AUDIO_BYTES,
    MAX_AUDIO_SECONDS,
    MAX_MIC_FRAME_BYTES,
    MAX_TEXT_CHARS,
    MIC_SAMPLE_RATE,
    MIN_AUDIO_SECONDS,
    SCHEMA_VERSION,
    STT_SAMPLE_RATE,
    AudioFormat,
)
from .results import Progress, Segment, Speech, SpeechClip, Transcript, Word

__all__ = [
    "AUDIO_FORMATS",
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "MAX_MIC_FRAME_BYTES",
    "MAX_TEXT_CHARS",
    "MIC_SAMPLE_RATE",
    "MIN_AUDIO_SECONDS",
    "SCHEMA_VERSION",
    "STT_SAMPLE_RATE",
    "AudioFormat",
    "ErrorCode",
    "Event",
    "EventType",
    "JobError",
    "JobPayload",
    "ListenJob",
    "PingJob",
    "Progress",
    "Segment",
    "Speech",
    "SpeechClip",
    "SynthesisJob",
    "Transcript",
    "TranscriptionJob",
    "Word",
]
