"""Synthesized clips, served to the browser's audio player: `/api/audio/{session_id}/{name}`."""

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queues import BlobMissing

from .errors import ApiError
from .services import services

NAME = re.compile(r"^[A-Za-z0-9_-]{8,40}\.wav$")
SESSION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def audio_url(audio_key: str) -> str | None:
    """The URL of a clip the worker stored, from its blob key (`<prefix>:blob:<session>:<name>`)."""
    parts = audio_key.split(":")
    return f"/api/audio/{parts[-2]}/{parts[-1]}" if len(parts) >= 4 else None


async def audio(request: Request) -> Response:
    session_id, name = request.path_params["session_id"], request.path_params["name"]
    if not SESSION.match(session_id) or not NAME.match(name):
        raise ApiError(404, "not_found", "No such audio clip.")
    s = services(request)
    try:
        data = await s.blobs.get(s.blobs.key(session_id, name))
    except BlobMissing:
        raise ApiError(404, "not_found", "That audio clip has expired or never existed.") from None
    return Response(data, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


routes = [Route("/api/audio/{session_id}/{name}", audio)]
