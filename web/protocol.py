"""The chat WebSocket's frames (see PROTOCOL.md): what a client may send, what the server sends."""

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from shared_schemas import MIC_SAMPLE_RATE, AudioFormat, Event, payloads

MAX_TEXT_FRAME = 64 * 1024
EVENT_ID = re.compile(r"^(0|\d{1,20}-\d{1,20})$")
VoiceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]{1,64}$")]
TurnId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextTurn(_Frame):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=4000)
    voice: VoiceName | None = None
    hear_members: bool | None = None


class AudioStart(_Frame):
    type: Literal["audio_start"]
    format: AudioFormat = "webm"
    voice: VoiceName | None = None
    hear_members: bool | None = None


class AudioEnd(_Frame):
    type: Literal["audio_end"]


class Listen(_Frame):
    """Open the microphone: binary frames that follow are PCM16 little-endian mono at 16 kHz."""

    type: Literal["listen"]
    mode: Literal["hands_free", "push_to_talk"] = "hands_free"
    sample_rate: int = MIC_SAMPLE_RATE
    voice: VoiceName | None = None
    hear_members: bool | None = None

    @field_validator("sample_rate")
    @classmethod
    def _sixteen_khz(cls, rate: int) -> int:
        if rate != MIC_SAMPLE_RATE:
            raise ValueError(f"must be {MIC_SAMPLE_RATE}: resample the microphone to 16 kHz mono PCM16 first")
        return rate


class Options(_Frame):
    """The voice and `hear_members` of the answers that follow, spoken turns on an open microphone
    included (a page sends it as the person changes them)."""

    type: Literal["options"]
    voice: VoiceName | None = None
    hear_members: bool | None = None


class ListenEnd(_Frame):
    type: Literal["listen_end"]


class Position(_Frame):
    """Where playback of a turn's answer got to: sentence `index`, its `chunk`, seconds into it."""

    turn_id: TurnId
    index: int = Field(ge=0)
    chunk: int = Field(default=0, ge=0)
    offset_s: float = Field(default=0.0, ge=0, le=3600)


class Played(Position):
    """The page played up to here (`done`: the whole answer)."""

    type: Literal["played"]
    done: bool = False


class Interrupt(_Frame):
    type: Literal["interrupt"]
    heard: Position | None = None  # where the page stopped the answer's sound


class Ping(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    TextTurn | AudioStart | AudioEnd | Listen | ListenEnd | Options | Played | Interrupt | Ping,
    Field(discriminator="type"),
]
client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def error_frame(code: str, message: str) -> dict[str, Any]:
    """The one error shape, as a frame: never stored, never replayed."""
    return {"id": None, "type": "error", "error": {"code": code, "message": message}}


def event_frame(event: Event, audio_url: str | None = None) -> dict[str, Any]:
    payload = event.payload.model_dump(mode="json")  # the fields it was given, as it came
    if isinstance(event.payload, payloads.Audio) and audio_url:
        payload["url"] = audio_url
    return {
        "id": event.id,
        "type": event.type.value,
        "job_id": event.job_id,
        "seq": event.seq,
        "time": event.time.isoformat(),
        "payload": payload,
    }
