"""`POST /v1/audio/transcriptions`: OpenAI's transcription endpoint, answered by our workers.

Multipart fields, as OpenAI's clients send them:
- `file` (required): the audio, stored in the blob store as the batch page stores files; its name's
  extension is the worker's format hint (it sniffs the bytes anyway). One transcription job on the
  realtime queue (a file over COUNCIL_V1_REALTIME_MAX_BYTES: the batch queue, so a long file never
  holds the worker kept for conversations), reserved through the app's meter before it is enqueued.
  A client that hangs up before its answer stops its job, streamed or not.
- `model` (required): `whisper-1`, `whisper` or `parakeet`, all meaning the workers' STT engine
  (see models.py); the answer's `X-Council-Engine` header names the one that heard it.
- `language`: an ISO-639-1 code (`en`). Without it, English: our engines do not detect the language.
- `prompt`: accepted and not used. The transcription job carries no prompt, so no engine sees it.
- `temperature`: accepted and not used (the engines decode as they are configured).
- `response_format`: `json` (`{"text", "usage"}`), `text`, `srt`, `vtt` (web/transcripts.py's
  renderings, as the batch downloads), or `verbose_json` (`task`, `language` as its ISO code,
  `duration`, `text`, `segments`, `words`, `usage`).
- `timestamp_granularities[]`: `segment` and/or `word`, with `verbose_json` only; `segments` come
  when `segment` is asked or nothing is, `words` when `word` is. Segments carry `id`, `start`,
  `end` and `text`: Whisper's decoding details (seek, tokens, avg_logprob, ...) do not reach the
  app, so they are left out rather than made up.
- `stream=true` (with `json` or `text`): server-sent events, `transcript.text.delta` per segment,
  then `transcript.text.done` with the whole text. The worker recognizes a file before it says
  anything, so the deltas come together at the end; a long file's progress comes before them as
  SSE comments (`: progress 0.40`).

Anything else (`include[]`, `chunking_strategy`, ...) is refused, naming the field, so nobody
believes that a setting was applied. A frozen or spent user is refused (429) before the upload is
read; the answer, streamed or not, waits for the job's first event, so a refused budget, audio
that does not decode or a timeout is an HTTP status. The audio is deleted when the request ends.
"""

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Final

import redis.exceptions
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared_schemas import MAX_AUDIO_BYTES, ErrorCode, Event, EventType, Progress, Transcript, TranscriptionJob

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
LANGUAGE = re.compile(r"^[a-z]{2}$")
log = logging.getLogger(__name__)


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise invalid(f"Send {name!r} as a plain form field, not a file.", name)
    return value.strip() if value is not None else None


class Asked:
    """What a transcription request asks for, checked before any audio is stored."""

    def __init__(self, form: FormData) -> None:
        extra = sorted({key for key in form if key not in FIELDS} - {"timestamp_granularities"})
        if extra:
            raise invalid(f"Unrecognized field(s): {', '.join(extra)}. Fields: {', '.join(sorted(FIELDS))}.", extra[0])
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


def verbose(transcript: Transcript, granularities: set[str]) -> dict[str, Any]:
    """OpenAI's verbose_json of a transcript."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language,
        "duration": transcript.duration_s,
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {"id": n, "start": s.start, "end": s.end, "text": s.text} for n, s in enumerate(transcript.segments)
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.text.strip(), "start": w.start, "end": w.end} for s in transcript.segments for w in s.words
        ]
    body["usage"] = _usage(transcript)
    return body


def _usage(transcript: Transcript) -> dict[str, Any]:
    return {"type": "duration", "seconds": transcript.duration_s}


def answer(transcript: Transcript, asked: Asked) -> Response:
    headers = {"X-Council-Engine": transcript.engine}
    match asked.format:
        case "json":
            return JSONResponse({"text": transcript.text, "usage": _usage(transcript)}, headers=headers)
        case "verbose_json":
            return JSONResponse(verbose(transcript, asked.granularities), headers=headers)
    body, media_type = render(transcript, "txt" if asked.format == "text" else asked.format)
    return Response(body, media_type=media_type, headers=headers)


def deltas(transcript: Transcript) -> list[str]:
    """The text in pieces, one a segment, that join back into `transcript.text`."""
    pieces = [s.text.strip() for s in transcript.segments if s.text.strip()]
    if " ".join(pieces) != transcript.text:
        return [transcript.text] if transcript.text else []
    return [piece if n == 0 else f" {piece}" for n, piece in enumerate(pieces)]


async def streamed(first: Event, rest: AsyncIterator[tuple[int, Event]]) -> AsyncIterator[bytes]:
    """The job's events as OpenAI's transcript.text events; a failure mid-way is an error event."""
    async with contextlib.aclosing(rest):
        event = first
        try:
            while event.type is not EventType.TRANSCRIPT:
                yield sse.comment(f"progress {Progress.model_validate(event.payload).fraction:.2f}")
                _, event = await anext(rest)
        except OpenAIError as exc:
            yield sse.event(exc.body())
            return
    transcript = Transcript.model_validate(event.payload)
    for piece in deltas(transcript):
        yield sse.event({"type": "transcript.text.delta", "delta": piece})
    yield sse.event({"type": "transcript.text.done", "text": transcript.text})


@answered
async def create_transcription(request: Request) -> Response:
    s = services(request)
    user = user_of(request)
    # Refused before the upload is read: a frozen or spent user sends 25 MB for nothing otherwise.
    await s.meter.budgets.check_user(user)
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "multipart/form-data":
        raise invalid("Send multipart/form-data with the audio in a file field named 'file'.", "file")
    form = await read_form(request, min(MAX_AUDIO_BYTES, s.settings.queues.blob_max_bytes))
    try:
        asked = Asked(form)
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
) -> AsyncIterator[tuple[int, Event]]:
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
    )
    timeout = float(s.settings.queues.transcribe_timeout_s)
    run = jobs.run(s, [job], timeout=timeout, audio_bytes=[len(data)], queue=queue)
    try:
        async with contextlib.aclosing(run):
            async for item in run:
                yield item
    finally:
        with contextlib.suppress(redis.exceptions.RedisError):
            await asyncio.shield(s.meter.forget_audio(user, {key: len(data)}))


routes = [Route("/v1/audio/transcriptions", create_transcription, methods=["POST"])]
