"""Synthesized clips, served to the browser's audio player: `/api/audio/{session_id}/{name}`.

A clip is served only to the user who owns its session (see sessions.py); to anyone else, as to a
name that was never minted, it does not exist (404).
"""

import io
import json
import re
import struct
import wave

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queues import BlobMissing
from shared_schemas import ErrorCode, payloads

from .auth import user_of
from .errors import ApiError
from .services import services
from .sessions import SESSION_ID, Sessions

NAME = re.compile(r"^[A-Za-z0-9_-]{8,40}\.wav$")
NOT_FOUND = "That audio clip has expired, never existed, or belongs to another user."


def audio_url(audio_key: str) -> str | None:
    """The URL of a clip the worker stored, from its blob key (`<prefix>:blob:<session>:<name>`)."""
    parts = audio_key.split(":")
    return f"/api/audio/{parts[-2]}/{parts[-1]}" if len(parts) >= 4 else None


def pcm_frame(event_id: str | None, payload: payloads.Audio, wav: bytes) -> bytes:
    """A clip as one binary WebSocket frame (see PROTOCOL.md): a 4-byte little-endian length, that
    many bytes of JSON saying which sentence and chunk it is, then its PCM16 mono samples."""
    with wave.open(io.BytesIO(wav), "rb") as clip:
        if clip.getsampwidth() != 2 or clip.getnchannels() != 1:
            raise ValueError("clips are 16-bit mono WAV")
        rate, samples = clip.getframerate(), clip.readframes(clip.getnframes())
    header = {
        "type": "audio",
        "id": event_id,
        "turn_id": payload.turn_id,
        "member": payload.member,
        "index": payload.index,
        "chunk": payload.chunk,
        "sentence_done": payload.sentence_done,
        "last": payload.last,
        "sample_rate": rate,
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + samples


async def audio(request: Request) -> Response:
    session_id, name = request.path_params["session_id"], request.path_params["name"]
    if not SESSION_ID.match(session_id) or not NAME.match(name):
        raise ApiError(404, ErrorCode.NOT_FOUND, NOT_FOUND)
    s = services(request)
    if await Sessions(s.settings.queues, s.aredis).owner(session_id) != user_of(request):
        raise ApiError(404, ErrorCode.NOT_FOUND, NOT_FOUND)
    try:
        data = await s.blobs.get(s.blobs.key(session_id, name))
    except BlobMissing:
        raise ApiError(404, ErrorCode.NOT_FOUND, NOT_FOUND) from None
    return Response(data, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


routes = [Route("/api/audio/{session_id}/{name}", audio)]
