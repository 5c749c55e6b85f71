"""Text to speech over REST: `POST /api/speech` with `{"text": ..., "voice": ...}` answers a WAV.

The text is spoken by a worker as one synthesis job on the realtime queue, sentence by sentence
(a voice that streams sends each sentence in chunks); this waits for the job's clips, joins them in
(sentence, chunk) order into one WAV and answers it. A job that fails answers
422 with the worker's own error (unknown_voice, text_too_long, ...); one that does not finish in
time is cancelled if it has not started, and answers 504.
"""

import contextlib
import uuid

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queues import BlobMissing, join_wavs
from shared_schemas import MAX_TEXT_CHARS, VOICE_PATTERN, ErrorCode, SpeechClip, SynthesisJob, payloads

from .auth import user_of
from .errors import ApiError
from .services import Services, services

# A request body is small: the text and a voice name.
MAX_BODY_BYTES = 16 * 1024


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    voice: str = Field(pattern=VOICE_PATTERN)


async def parse_request(request: Request) -> SpeechRequest:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, ErrorCode.TOO_LARGE, f"The request body is over {MAX_BODY_BYTES // 1024} KiB.")
    try:
        speech = SpeechRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise ApiError(
            400, ErrorCode.INVALID_REQUEST, f'Send JSON {{"text": ..., "voice": ...}}: {problems}.'
        ) from None
    # Answered as the worker would, without a round trip (the worker checks again).
    text = speech.text.strip()
    if not text:
        raise ApiError(422, ErrorCode.EMPTY_TEXT, "There is no text to speak.")
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(
            422,
            ErrorCode.TEXT_TOO_LONG,
            f"The text is {len(text)} characters; one request speaks at most {MAX_TEXT_CHARS}. Split it.",
        )
    return speech


async def speak(s: Services, speech: SpeechRequest, timeout: float, user: str | None = None) -> list[SpeechClip]:
    """The clips of one synthesis job, in order; raises ApiError when it fails or takes too long.
    The worker meters the job against `user`."""
    session_id = f"speech-{uuid.uuid4().hex}"
    text = speech.text.strip()
    job = SynthesisJob(session_id=session_id, job_id=session_id, text=text, voice=speech.voice, user=user)
    clips: list[SpeechClip] = []
    events = s.jobs.arun(s.hub, job, s.settings.queues.realtime_queue, timeout=timeout, enqueue=s.meter.enqueue)
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event.payload, payloads.Failed):
                    raise ApiError(422, event.payload.code, event.payload.message)
                if isinstance(event.payload, payloads.Audio):
                    clips.append(event.payload)
    except TimeoutError:
        await s.jobs.acancel(job.job_id)
        raise ApiError(504, ErrorCode.TIMEOUT, f"No voice worker spoke the text within {timeout:g} s.") from None
    return sorted(clips, key=lambda clip: clip.order)


async def speech_endpoint(request: Request) -> Response:
    s = services(request)
    speech = await parse_request(request)
    clips = await speak(s, speech, timeout=float(s.settings.queues.synthesize_timeout_s), user=user_of(request))
    data: list[bytes] = []
    for clip in clips:
        try:
            data.append(await s.blobs.get(clip.audio_key))
        except BlobMissing:
            raise ApiError(
                502, ErrorCode.BLOB_MISSING, "A spoken clip expired before it was read. Try again."
            ) from None
        await s.meter.forget_audio(user_of(request), [clip.audio_key])  # read: off the user's share
    headers = {
        "Content-Disposition": 'inline; filename="speech.wav"',
        "X-Duration-Seconds": f"{sum(c.duration_s for c in clips):.3f}",
    }
    try:
        audio = join_wavs(data)
    except ValueError:
        raise ApiError(502, ErrorCode.ENGINE_FAILED, "The voice worker's clips do not share one format.") from None
    return Response(audio, media_type="audio/wav", headers=headers)


routes = [Route("/api/speech", speech_endpoint, methods=["POST"])]
