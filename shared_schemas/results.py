"""Job results: what a worker returns (as a plain dict) and carries in its events."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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


class Transcript(_Result):
    kind: Literal["transcript"] = "transcript"
    text: str
    language: str
    duration_s: float = Field(ge=0, description="Length of the input audio.")
    segments: list[Segment] = []
    engine: str


class SpeechClip(_Result):
    """One synthesized sentence: a WAV in the blob store, with what a player needs to know.

    A synthesis job speaks its text sentence by sentence and emits one clip per sentence, so
    playback can start before the whole text is spoken; `last` marks the job's final clip.
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
    last: bool = True
    text: str
    engine: str


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

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)
