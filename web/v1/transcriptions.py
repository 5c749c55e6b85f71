"""`POST /v1/audio/transcriptions` and `/v1/audio/translations`: OpenAI's endpoints, answered by
our workers.

Multipart fields, as OpenAI's clients send them:
- `file` (required): the audio, stored in the blob store as the batch page stores files; its name's
  extension is the worker's format hint (it sniffs the bytes anyway). One transcription job on the
  realtime queue (a file over COUNCIL_V1_REALTIME_MAX_BYTES: the batch queue, so a long file never
  holds the worker kept for conversations), reserved through the app's meter before it is enqueued.
  A client that hangs up before its answer stops its job, streamed or not.
- `model` (required): `whisper-1`, `gpt-4o-mini-transcribe`, `gpt-4o-transcribe`, `whisper` or
  `parakeet`, all meaning the workers' STT engine (see models.py); the answer's `X-Council-Engine`
  header names the one that heard it.
- `language`: an ISO-639-1 code (`en`). Without it, English: our engines do not detect the language.
- `prompt`: accepted and not used. The transcription job carries no prompt, so no engine sees it.
- `temperature`: accepted and not used (the engines decode as they are configured).
- `response_format`: `json` (`{"text", "usage"}`), `text`, `srt`, `vtt` (web/transcripts.py's
  renderings, as the batch downloads), or `verbose_json` (`task`, `language` as its ISO code,
  `duration`, `text`, `segments`, `words`, `usage`).
- `timestamp_granularities[]`: `segment` and/or `word`, with `verbose_json` only; `segments` come
  when `segment` is asked or nothing is, `words` when `word` is. Segments carry all of OpenAI's
  fields: `id`, `seek`, `start`, `end`, `text`, `tokens`, `temperature`, `avg_logprob`,
  `compression_ratio`, `no_speech_prob`, as the Whisper engine decoded them. An engine that does
  not report them (Parakeet) gives `seek` from the start (10 ms frames), `tokens` [], `temperature`
  0 (it decodes greedily), `avg_logprob` the mean log of its word probabilities (0 without them),
  `compression_ratio` of the text as Whisper computes it (gzip), `no_speech_prob` 0.
- `stream=true` (with `json` or `text`): server-sent events, a `transcript.text.delta` for each
  segment as the worker decodes it (it publishes each in a progress event; Whisper decodes a
  piece of up to 30 s, cut at pauses, at a time, so one piece's segments come together), then
  `transcript.text.done` with the whole text and `usage` (`{"type": "duration", "seconds"}`).
  Progress without new text comes as SSE comments (`: progress 0.40`).

`/v1/audio/translations` takes `file`, `model`, `prompt`, `response_format` and `temperature`, as
OpenAI's does, and asks the worker for English text of the speech (`task: translate`). Our
engines know only English, and the worker refuses such a job naming its engine (400): English
speech needs no translation.

Anything else (`include[]`, `chunking_strategy`, ...) is refused, naming the field, so nobody
believes that a setting was applied. A frozen or spent user is refused (429) before the upload is
read; the answer, streamed or not, waits for the job's first event, so a refused budget, audio
that does not decode or a timeout is an HTTP status. The audio is deleted when the request ends.
"""

import asyncio
import contextlib
import logging
import math
import re
import uuid
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, Final

import redis.exceptions
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared_schemas import (
    MAX_AUDIO_BYTES,
    ErrorCode,
    Event,
    EventType,
    Progress,
    Segment,
    Transcript,
    TranscriptionJob,
)

from ..auth import user_of
from ..batch import format_hint, read_form, safe_filename
from ..lengths import declared_seconds
from ..services import Services, services
from ..transcripts import render
from . import jobs, sse
from .errors import OpenAIError, answered, invalid
from .models import TRANSCRIPTION, unknown_model

FORMATS: Final = ("json", "text", "srt", "vtt", "verbose_json")
STREAMED_FORMATS: Final = ("json", "text")
GRANULARITIES: Final = ("segment", "word")
IGNORED: Final = ("prompt", "temperature")
FIELDS: Final = frozenset(
    {"file", "model", "language", "response_format", "stream", "timestamp_granularities[]", *IGNORED}
)
# /v1/audio/translations: no language (the text is English), no stream, no timestamp granularities.
TRANSLATION_FIELDS: Final = frozenset({"file", "model", "response_format", *IGNORED})
LANGUAGE = re.compile(r"^[a-z]{2}$")
log = logging.getLogger(__name__)


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise invalid(f"Send {name!r} as a plain form field, not a file.", name)
    return value.strip() if value is not None else None


class Asked:
    """What a transcription request asks for, checked before any audio is stored."""

    def __init__(self, form: FormData, task: str = "transcribe") -> None:
        self.task = task
        fields = FIELDS if task == "transcribe" else TRANSLATION_FIELDS
        extra = sorted({key for key in form if key not in fields} - {"timestamp_granularities"})
        if task != "transcribe" and "timestamp_granularities" in form:
            extra.append("timestamp_granularities")
        if extra:
            raise invalid(f"Unrecognized field(s): {', '.join(extra)}. Fields: {', '.join(sorted(fields))}.", extra[0])
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("Send the audio as a multipart file field named 'file'.", "file")
        self.upload = upload
        self.model = _text_field(form, "model") or ""
        if not self.model:
            raise invalid(f"Name a model: one of {', '.join(TRANSCRIPTION)}.", "model")
        if self.model not in TRANSCRIPTION:
            raise unknown_model(self.model, "transcription", list(TRANSCRIPTION))
        self.language = (_text_field(form, "language") or "en").lower()
        if not LANGUAGE.match(self.language):
            raise invalid(f"language {self.language!r} is not an ISO-639-1 code such as 'en' or 'de'.", "language")
        self.format = _text_field(form, "response_format") or "json"
        if self.format not in FORMATS:
            raise invalid(f"response_format {self.format!r} is not one of {', '.join(FORMATS)}.", "response_format")
        stream = (_text_field(form, "stream") or "false").lower()
        if stream not in ("true", "false"):
            raise invalid(f"stream must be true or false, not {stream!r}.", "stream")
        self.stream = stream == "true"
        if self.stream and self.format not in STREAMED_FORMATS:
            raise invalid(
                f"stream=true sends transcript.text events; ask for response_format json or text, not {self.format}.",
                "stream",
            )
        granularities = [*form.getlist("timestamp_granularities[]"), *form.getlist("timestamp_granularities")]
        self.granularities = {str(g).strip() for g in granularities}
        if self.granularities - set(GRANULARITIES):
            wrong = ", ".join(sorted(self.granularities - set(GRANULARITIES)))
            raise invalid(f"timestamp_granularities[] {wrong}: ask for segment and/or word.", "timestamp_granularities")
        if self.granularities and self.format != "verbose_json":
            raise invalid("timestamp_granularities[] needs response_format verbose_json.", "timestamp_granularities")


def verbose(transcript: Transcript, granularities: set[str], task: str = "transcribe") -> dict[str, Any]:
    """OpenAI's verbose_json of a transcript."""
    body: dict[str, Any] = {
        "task": task,
        "language": transcript.language,
        "duration": transcript.duration_s,
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [segment_of(n, s) for n, s in enumerate(transcript.segments)]
    if "word" in granularities:
        body["words"] = [
            {"word": w.text.strip(), "start": w.start, "end": w.end} for s in transcript.segments for w in s.words
        ]
    body["usage"] = _usage(transcript)
    return body


def segment_of(n: int, s: Segment) -> dict[str, Any]:
    """OpenAI's verbose_json segment, every field (see the module's docstring for an engine's gaps)."""
    probabilities = [w.probability for w in s.words if w.probability is not None and w.probability > 0]
    mean_logprob = sum(map(math.log, probabilities)) / len(probabilities) if probabilities else 0.0
    return {
        "id": n,
        "seek": s.seek if s.seek is not None else round(s.start * 100),
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": s.tokens or [],
        "temperature": s.temperature if s.temperature is not None else 0.0,
        "avg_logprob": s.avg_logprob if s.avg_logprob is not None else round(mean_logprob, 4),
        "compression_ratio": s.compression_ratio if s.compression_ratio is not None else compression_ratio(s.text),
        "no_speech_prob": s.no_speech_prob if s.no_speech_prob is not None else 0.0,
    }


def compression_ratio(text: str) -> float:
    """Whisper's: the text's bytes over their zlib-compressed size (a loop compresses well)."""
    data = text.encode()
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def _usage(transcript: Transcript) -> dict[str, Any]:
    return {"type": "duration", "seconds": transcript.duration_s}


def answer(transcript: Transcript, asked: Asked) -> Response:
    headers = {"X-Council-Engine": transcript.engine}
    match asked.format:
        case "json":
            return JSONResponse({"text": transcript.text, "usage": _usage(transcript)}, headers=headers)
        case "verbose_json":
            return JSONResponse(verbose(transcript, asked.granularities, asked.task), headers=headers)
    body, media_type = render(transcript, "txt" if asked.format == "text" else asked.format)
    return Response(body, media_type=media_type, headers=headers)


def deltas(transcript: Transcript) -> list[str]:
    """The text in pieces, one a segment, that join back into `transcript.text`."""
    pieces = [s.text.strip() for s in transcript.segments if s.text.strip()]
    if " ".join(pieces) != transcript.text:
        return [transcript.text] if transcript.text else []
    return [piece if n == 0 else f" {piece}" for n, piece in enumerate(pieces)]


async def streamed(first: Event, rest: AsyncGenerator[tuple[int, Event], None]) -> AsyncIterator[bytes]:
    """The job's events as OpenAI's transcript.text events: a delta for each segment as the worker
    decodes it, then the whole text with its usage; a failure mid-way is an error event."""
    sent = 0
    async with contextlib.aclosing(rest):
        event = first
        try:
            while event.type is not EventType.TRANSCRIPT:
                progress = Progress.model_validate(event.payload)
                pieces = [s.text.strip() for s in progress.segments if s.text.strip()]
                for piece in pieces:
                    yield sse.event({"type": "transcript.text.delta", "delta": piece if not sent else f" {piece}"})
                    sent += 1
                if not pieces:
                    yield sse.comment(f"progress {progress.fraction:.2f}")
                _, event = await anext(rest)
        except OpenAIError as exc:
            yield sse.event(exc.body())
            return
    transcript = Transcript.model_validate(event.payload)
    if not sent:  # an engine that said nothing before its transcript (batched with other files)
        for piece in deltas(transcript):
            yield sse.event({"type": "transcript.text.delta", "delta": piece})
    yield sse.event({"type": "transcript.text.done", "text": transcript.text, "usage": _usage(transcript)})


@answered
async def create_transcription(request: Request) -> Response:
    return await _transcribe_or_translate(request, "transcribe")


@answered
async def create_translation(request: Request) -> Response:
    return await _transcribe_or_translate(request, "translate")


async def _transcribe_or_translate(request: Request, task: str) -> Response:
    s = services(request)
    user = user_of(request)
    # Refused before the upload is read: a frozen or spent user sends 25 MB for nothing otherwise.
    await s.meter.budgets.check_user(user)
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "multipart/form-data":
        raise invalid("Send multipart/form-data with the audio in a file field named 'file'.", "file")
    form = await read_form(request, min(MAX_AUDIO_BYTES, s.settings.queues.blob_max_bytes))
    try:
        asked = Asked(form, task)
        data = await asked.upload.read()
    finally:
        await form.close()
    if not data:
        raise invalid("The file is empty: there is nothing to transcribe.", "file", ErrorCode.EMPTY_AUDIO)
    # A long file goes to the batch queue: it must not hold the worker kept free for conversations.
    # (Long by its size, or by what its header says: a small FLAC may hold hours.)
    seconds = declared_seconds(data)
    long = len(data) > s.settings.v1_realtime_max_bytes or (seconds or 0) > s.settings.v1_realtime_max_s
    queue = s.settings.queues.batch_queue if long else None
    events = _events(s, asked, data, user, queue)
    # The first event (the transcript itself, for all but long files; all of it when not streamed)
    # before any answer: a refused budget, bad audio or a timeout is then still an HTTP status. A
    # client that hangs up meanwhile stops its job: nobody waits for it.
    try:
        first = await unless_gone(request, _first(events, whole=not asked.stream))
    except BaseException:
        await events.aclose()
        raise
    if first is None:
        log.info("%s: the client left before its transcript; its job was stopped", request.url.path)
        return Response(status_code=499)
    if asked.stream:
        return sse.response(streamed(first, events))
    await events.aclose()
    return answer(Transcript.model_validate(first.payload), asked)


async def _first(events: AsyncIterator[tuple[int, Event]], whole: bool) -> Event:
    """The job's first event, or (`whole`) its transcript."""
    _, event = await anext(events)
    while whole and event.type is not EventType.TRANSCRIPT:
        _, event = await anext(events)
    return event


async def unless_gone(request: Request, waiting: Coroutine[Any, Any, Event]) -> Event | None:
    """What `waiting` gives, or None when the client hangs up first (`waiting` is cancelled, and
    with it the job it waits for). The request's body has been read: the next ASGI message is the
    disconnect."""
    task = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, gone):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    return task.result() if not task.cancelled() else None


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _events(
    s: Services, asked: Asked, data: bytes, user: str, queue: str | None = None
) -> AsyncGenerator[tuple[int, Event], None]:
    """The job's events: its audio stored, the job enqueued through the meter, and the audio
    deleted when the request is over (the worker has read it by then, or will not need it)."""
    session_id = f"v1-stt-{uuid.uuid4().hex}"
    filename = safe_filename(asked.upload.filename, 0)
    key = await s.meter.store_audio(user, session_id, data)  # within the user's share
    job = TranscriptionJob(
        session_id=session_id,
        job_id=session_id,
        audio_key=key,
        format=format_hint(filename),
        filename=filename,
        language=asked.language,
        user=user,
        task="translate" if asked.task == "translate" else "transcribe",
    )
    timeout = float(s.settings.queues.transcribe_timeout_s)
    run = jobs.run(s, [job], timeout=timeout, audio_bytes=[len(data)], queue=queue)
    try:
        async with contextlib.aclosing(run):
            async for item in run:
                yield item
    finally:
        with contextlib.suppress(redis.exceptions.RedisError):
            await asyncio.shield(s.meter.forget_audio(user, [key]))


routes = [
    Route("/v1/audio/transcriptions", create_transcription, methods=["POST"]),
    Route("/v1/audio/translations", create_translation, methods=["POST"]),
]
