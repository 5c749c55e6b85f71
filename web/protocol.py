"""The chat WebSocket's frames (see PROTOCOL.md): what a client may send, what the server sends."""

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared_schemas import AudioFormat, Event, EventType

MAX_TEXT_FRAME = 64 * 1024
EVENT_ID = re.compile(r"^(0|\d{1,20}-\d{1,20})$")
VoiceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]{1,64}$")]


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


class Interrupt(_Frame):
    type: Literal["interrupt"]


class Ping(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[TextTurn | AudioStart | AudioEnd | Interrupt | Ping, Field(discriminator="type")]
client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def error_frame(code: str, message: str) -> dict[str, Any]:
    """The one error shape, as a frame: never stored, never replayed."""
    return {"id": None, "type": "error", "error": {"code": code, "message": message}}


def event_frame(event: Event, audio_url: str | None = None) -> dict[str, Any]:
    payload = dict(event.payload)
    if event.type is EventType.AUDIO and audio_url:
        payload["url"] = audio_url
    return {
        "id": event.id,
        "type": event.type.value,
        "job_id": event.job_id,
        "seq": event.seq,
        "time": event.time.isoformat(),
        "payload": payload,
    }
