"""`POST /v1/audio/speech`: OpenAI's text-to-speech endpoint, spoken by our workers.

JSON body:
- `model` (required): `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts` (any voice), or a TTS engine's name
  (`piper`, `espeak`, `coqui`: its own voices only); see models.py.
- `input` (required): up to 4096 characters, as OpenAI allows. One synthesis job speaks at most
  MAX_TEXT_CHARS, so longer text is cut at sentence ends into several jobs, enqueued together
  through the app's meter (all reserved, or none) on the realtime queue, and heard in order.
- `voice` (required): one of our voices, as the workers announced them (`max`, `ada`, `joe`, ...;
  GET /v1/models lists them), or one of OpenAI's (`alloy`, `nova`, ...), which voices.py maps to
  ours (COUNCIL_OPENAI_VOICES); the `X-Council-Voice` header names the voice of ours that spoke.
- `response_format`: `mp3` (OpenAI's default), `opus` (Ogg Opus), `aac` (ADTS), `flac`, `wav`, or
  `pcm`: raw 16-bit little-endian mono at the voice's own rate, which the `X-Sample-Rate` header
  gives (every format's answer carries it: the rate the samples were spoken at).
- `speed`: 0.25-4.0, by ffmpeg's atempo (the pitch stays); 1.0 leaves the audio untouched.
- `instructions`: accepted and not used: our voices take no direction.
- `stream_format`: `audio` only (OpenAI's `sse` is refused).

Streaming: the answer starts once the first sentence is spoken (so a refused budget, an unknown
voice or a timeout is still an HTTP status), then each clip goes out as it arrives, in chunked
transfer: pcm as is, mp3/opus/aac through one ffmpeg process (encoder.py). A WAV's and a FLAC's
header hold the length, so `wav` and `flac` wait for every clip and answer one whole file. A job that fails after the
answer began ends the response without its last chunk: the client sees an incomplete body,
never a short file passed off as whole.
"""

import contextlib
import io
import logging
import uuid
import wave
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from queues import BlobMissing
from shared_schemas import (
    MAX_TEXT_CHARS,
    VOICE_PATTERN,
    ErrorCode,
    SpeechClip,
    SynthesisJob,
    payloads,
    split_sentences,
)

from ..auth import user_of
from ..services import Services, services
from . import jobs
from .bodies import json_body
from .encoder import MEDIA_TYPES, Encoder, EncoderFailed
from .errors import OpenAIError, answered, invalid
from .models import speech_models, unknown_model
from .voices import spoken_by

log = logging.getLogger(__name__)

MAX_INPUT_CHARS: Final = 4096
# The input, JSON-escaped at worst, and the other fields.
MAX_BODY_BYTES: Final = 8 * MAX_INPUT_CHARS
Format = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
# Formats whose header holds the length: answered whole, once every clip is spoken.
WHOLE: Final = ("wav", "flac")


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    input: str
    voice: str = Field(pattern=VOICE_PATTERN)
    response_format: Format = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: Literal["audio"] = "audio"


async def parse(request: Request) -> SpeechRequest:
    speech = await json_body(request, SpeechRequest, MAX_BODY_BYTES, '{"model", "input", "voice", ...}')
    text = speech.input.strip()
    if not text:
        raise invalid("There is no input to speak.", "input", ErrorCode.EMPTY_TEXT)
    if len(text) > MAX_INPUT_CHARS:
        raise invalid(
            f"The input is {len(text)} characters; one request speaks at most {MAX_INPUT_CHARS}. Split it.",
            "input",
            ErrorCode.TEXT_TOO_LONG,
        )
    return speech


def parts(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """`text` in pieces of whole sentences, each one job's worth (at most `limit` characters)."""
    pieces: list[str] = []
    for sentence in split_sentences(text, limit):
        if pieces and len(pieces[-1]) + 1 + len(sentence) <= limit:
            pieces[-1] += " " + sentence
        else:
            pieces.append(sentence)
    return pieces


class InOrder:
    """The clips of several jobs in the order they are heard, (job, sentence, chunk), each let out
    as soon as every clip before it has come. A job's last clip comes after its others (it ends
    the job): once it has, a gap in that job's numbering holds nothing up."""

    def __init__(self) -> None:
        self.next = (0, 0, 0)
        self.waiting: dict[tuple[int, int, int], SpeechClip] = {}
        self.ended: set[int] = set()

    def add(self, job: int, clip: SpeechClip) -> list[SpeechClip]:
        self.waiting[(job, clip.index, clip.chunk)] = clip
        if clip.last:
            self.ended.add(job)
        out = []
        while True:
            job_, index, chunk = self.next
            if self.next in self.waiting:
                clip = self.waiting.pop(self.next)
                out.append(clip)
                if not clip.sentence_done:
                    self.next = (job_, index, chunk + 1)
                else:
                    self.next = (job_ + 1, 0, 0) if clip.last else (job_, index + 1, 0)
            elif job_ in self.ended:  # whole, numbered with a gap: the rest of it in order
                out += [self.waiting.pop(k) for k in sorted(k for k in self.waiting if k[0] == job_)]
                self.next = (job_ + 1, 0, 0)
            else:
                return out


@dataclass(frozen=True)
class Samples:
    """One clip's audio: PCM16 mono frames at `rate`."""

    rate: int
    pcm: bytes


async def _samples_of(s: Services, clip: SpeechClip, user: str) -> Samples:
    try:
        data = await s.blobs.get(clip.audio_key)
    except BlobMissing:
        message = "A spoken clip expired before it was read. Try again."
        raise OpenAIError(502, message, code=ErrorCode.BLOB_MISSING) from None
    await s.meter.forget_audio(user, [clip.audio_key])  # read: off the user's share
    with wave.open(io.BytesIO(data)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise OpenAIError(502, "A voice worker sent audio that is not 16-bit mono.", code=ErrorCode.ENGINE_FAILED)
        return Samples(w.getframerate(), w.readframes(w.getnframes()))


async def spoken(s: Services, jobs_: list[SynthesisJob]) -> AsyncGenerator[Samples, None]:
    """Each clip's samples in the order heard, as soon as it can be heard."""
    order = InOrder()
    run = jobs.run(s, jobs_, timeout=float(s.settings.queues.synthesize_timeout_s))
    async with contextlib.aclosing(run):
        async for n, event in run:
            if isinstance(event.payload, payloads.Audio):
                for clip in order.add(n, event.payload):
                    yield await _samples_of(s, clip, jobs_[0].user or "anonymous")


async def frames(first: Samples, rest: AsyncGenerator[Samples, None]) -> AsyncGenerator[bytes, None]:
    """The PCM of every clip, all at the first clip's rate (one voice speaks at one rate)."""
    async with contextlib.aclosing(rest):
        yield first.pcm
        async for samples in rest:
            if samples.rate != first.rate:
                raise OpenAIError(
                    502, "The voice worker's clips do not share one sample rate.", code=ErrorCode.ENGINE_FAILED
                )
            yield samples.pcm


async def _logged(body: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """`body`; a failure after the answer began is logged and ends the connection mid-body."""
    async with contextlib.aclosing(body):
        try:
            async for chunk in body:
                yield chunk
        except (OpenAIError, EncoderFailed) as exc:
            log.warning("speech cut short: %s", exc)
            raise


def wav_file(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buffer.getvalue()


async def _voice_of(s: Services, speech: SpeechRequest) -> str:
    """The voice of ours that speaks the request (OpenAI's names mapped: voices.py)."""
    voices = await s.voices()
    models = speech_models(voices)
    if speech.model not in models:
        raise unknown_model(speech.model, "speech", list(models))
    voice = spoken_by(speech.voice, voices, s.settings.openai_voices)
    if voice is None:
        known = ", ".join(voices) or "none: no voice worker has started"
        raise invalid(
            f"Unknown voice {speech.voice!r}; voices: {known}, or OpenAI's ({', '.join(s.settings.openai_voices)}).",
            "voice",
            ErrorCode.UNKNOWN_VOICE,
        )
    if voice not in models[speech.model]:
        raise invalid(
            f"The model {speech.model} does not speak {speech.voice!r}; its voices: {', '.join(models[speech.model])} "
            "(tts-1 speaks every voice).",
            "voice",
            ErrorCode.UNKNOWN_VOICE,
        )
    return voice


@answered
async def create_speech(request: Request) -> Response:
    s = services(request)
    speech = await parse(request)
    voice = await _voice_of(s, speech)
    session_id = f"v1-tts-{uuid.uuid4().hex}"
    user = user_of(request)
    made = [
        SynthesisJob(session_id=session_id, job_id=f"{session_id}-{n}", text=part, voice=voice, user=user)
        for n, part in enumerate(parts(speech.input.strip()))
    ]
    clips = spoken(s, made)
    try:
        first = await anext(clips)
    except StopAsyncIteration:
        raise OpenAIError(502, "The voice worker finished without any audio.", code=ErrorCode.ENGINE_FAILED) from None
    fmt, pcm = speech.response_format, frames(first, clips)
    headers = {
        "X-Sample-Rate": str(first.rate),
        "X-Council-Voice": voice,
        "Content-Disposition": f'inline; filename="speech.{fmt}"',
    }
    if fmt in WHOLE:
        try:
            data = b"".join([chunk async for chunk in pcm])
            if fmt == "flac" or speech.speed != 1.0:
                data = await Encoder("pcm" if fmt == "wav" else fmt, first.rate, speech.speed).whole(data)
        except EncoderFailed as exc:
            raise OpenAIError(500, str(exc), code=ErrorCode.ENGINE_FAILED) from None
        return Response(
            wav_file(data, first.rate) if fmt == "wav" else data, media_type=MEDIA_TYPES[fmt], headers=headers
        )
    body = pcm
    if fmt != "pcm" or speech.speed != 1.0:
        body = Encoder(fmt, first.rate, speech.speed).encode(pcm)
    return StreamingResponse(_logged(body), media_type=MEDIA_TYPES[fmt], headers=headers)


routes = [Route("/v1/audio/speech", create_speech, methods=["POST"])]
