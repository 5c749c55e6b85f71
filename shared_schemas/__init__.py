"""The contract between the app (Python 3.13) and the voice workers (Python 3.11).

Pydantic models (they cross as JSON), the limits both sides check, the sentence cutting both
sides share, and the ids of turns and their jobs. Import from here, not from the modules: they are
private (`_jobs`, `_events`, ...), except `payloads`, the public module of what each event says.
"""

from . import payloads
from ._errors import RETRY_AFTER_S, RETRYABLE, ErrorCode, JobError, Refusal
from ._events import Event
from ._ids import listener_turn_id, new_stream_ids, new_turn_id, speech_job_id, transcript_job_id, turn_of
from ._jobs import ChatMessage, GenerationJob, JobPayload, ListenJob, PingJob, SynthesisJob, TranscriptionJob
from ._limits import (
    AUDIO_FORMATS,
    MAX_AUDIO_BYTES,
    MAX_AUDIO_SECONDS,
    MAX_CHAT_CHARS,
    MAX_CHAT_MESSAGES,
    MAX_GENERATED_TOKENS,
    MAX_MIC_FRAME_BYTES,
    MAX_TEXT_CHARS,
    MIC_SAMPLE_RATE,
    MIN_AUDIO_SECONDS,
    SCHEMA_VERSION,
    STT_SAMPLE_RATE,
    VOICE_PATTERN,
    AudioFormat,
)
from ._results import Progress, Segment, Speech, SpeechClip, Transcript, Word
from ._text import SentenceBuffer, split_sentences
from .payloads import EventType

__all__ = [
    "AUDIO_FORMATS",
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "MAX_CHAT_CHARS",
    "MAX_CHAT_MESSAGES",
    "MAX_GENERATED_TOKENS",
    "MAX_MIC_FRAME_BYTES",
    "MAX_TEXT_CHARS",
    "MIC_SAMPLE_RATE",
    "MIN_AUDIO_SECONDS",
    "RETRYABLE",
    "RETRY_AFTER_S",
    "SCHEMA_VERSION",
    "STT_SAMPLE_RATE",
    "VOICE_PATTERN",
    "AudioFormat",
    "ChatMessage",
    "ErrorCode",
    "Event",
    "EventType",
    "GenerationJob",
    "JobError",
    "JobPayload",
    "ListenJob",
    "PingJob",
    "Progress",
    "Refusal",
    "Segment",
    "SentenceBuffer",
    "Speech",
    "SpeechClip",
    "SynthesisJob",
    "Transcript",
    "TranscriptionJob",
    "Word",
    "listener_turn_id",
    "new_stream_ids",
    "new_turn_id",
    "payloads",
    "speech_job_id",
    "split_sentences",
    "transcript_job_id",
    "turn_of",
]
