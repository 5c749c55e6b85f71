"""Job results: what a worker returns (as a plain dict) and carries in its events."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Word(_Result):
    text: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    probability: float | None = None


class Segment(_Result):
    text: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    words: list[Word] = []
    # Whisper's decoding details, where the engine reports them (None elsewhere): the mean log
    # probability of its tokens, the gzip compression ratio of its text, the probability that
    # the window held no speech, the decoding temperature, its token ids, and the window's start
    # in 10 ms frames (Whisper's `seek`).
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None
    tokens: list[int] | None = None
    seek: int | None = Field(default=None, ge=0)


class Transcript(_Result):
    kind: Literal["transcript"] = "transcript"
    text: str
    language: str
    duration_s: float = Field(ge=0, description="Length of the input audio.")
    segments: list[Segment] = []
    engine: str


class SpeechClip(_Result):
    """A synthesized sentence, or a chunk of one: a WAV in the blob store, with what a player needs to know.

    A synthesis job speaks its text sentence by sentence, so playback can start before the whole
    text is spoken. An engine that streams speaks a sentence in chunks, each emitted as soon as it
    is made: `chunk` counts them from 0 and `sentence_done` marks the sentence's last one (an
    engine that does not stream gives one chunk per sentence, 0, done). Play clips in `order`,
    (index, chunk). `last` marks the job's final clip. The last chunk of a sentence may be empty
    (duration 0) when the sentence ended just after its audio went out.
    """

    kind: Literal["speech_clip"] = "speech_clip"
    audio_key: str
    format: Literal["wav"] = "wav"
    sample_rate: int = Field(gt=0)
    duration_s: float = Field(ge=0)
    voice: str
    member: str | None = None
    turn_id: str | None = None
    index: int = Field(default=0, ge=0, description="The sentence's place in its turn.")
    chunk: int = Field(default=0, ge=0, description="The chunk's place in its sentence.")
    sentence_done: bool = Field(default=True, description="Whether this is the sentence's last chunk.")
    last: bool = Field(default=True, description="Whether this is the job's last clip.")
    text: str = Field(description="The whole sentence, on each of its chunks.")
    engine: str

    @model_validator(mode="after")
    def _last_ends_its_sentence(self) -> "SpeechClip":
        if self.last and not self.sentence_done:
            raise ValueError("the job's last clip must end its sentence (last without sentence_done)")
        return self

    @property
    def order(self) -> tuple[int, int]:
        """Where the clip plays in its turn: by sentence, then by chunk."""
        return (self.index, self.chunk)


class Speech(_Result):
    """The result of a synthesis job: its clips, in order."""

    kind: Literal["speech"] = "speech"
    clips: list[SpeechClip]

    @property
    def duration_s(self) -> float:
        return sum(clip.duration_s for clip in self.clips)


class Progress(_Result):
    kind: Literal["progress"] = "progress"
    done: float = Field(ge=0, description="Seconds of audio processed so far.")
    total: float = Field(ge=0)
    # What was recognized since the last progress event, as it was decoded (a transcription's).
    segments: list[Segment] = []

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)
