"""Batch transcription over REST: upload files, follow the batch, download each transcript.

`POST /api/transcriptions` stores each file in the blob store and enqueues one transcription job
per file on the batch queue; `GET /api/transcriptions` lists the user's batches, newest first, a
page at a time (what the batch page shows after a reload); `GET /api/transcriptions/{batch_id}`
says where each file stands; `GET /api/transcriptions/{batch_id}/{job_id}?format=srt` gives one
transcript as a file, and `.../{batch_id}/archive?format=srt` every finished one in a zip;
`DELETE` on either cancels the batch's files, or one: a waiting file at once, a running one at the
end of the piece it is on (its state then says failed, code `canceled`). A user with as many jobs
waiting as it may gets 429 `rate_limited` with Retry-After, and nothing is enqueued.

Only cheap checks happen here (a file at all, its size, emptiness); whether it decodes is the
worker's call, and comes back as that file's `failed` state with the worker's error.
"""

import asyncio
import contextlib
import io
import re
import uuid
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final, cast

import redis.exceptions
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from queues import JobStatus, QueueSettings, ajob_status, as_text
from shared_schemas import AUDIO_FORMATS, MAX_AUDIO_BYTES, ErrorCode, TranscriptionJob

from .auth import user_of
from .errors import ApiError
from .services import Services, services
from .transcripts import FORMATS, content_disposition, render

MAX_FILES: Final = 200
# All files of one request together; a client with more splits them (web.upload does).
MAX_BATCH_BYTES: Final = 8 * MAX_AUDIO_BYTES
BATCH_ID = re.compile(r"^[0-9a-f]{32}$")


class FileError(BaseModel):
    code: str
    message: str


class BatchFile(BaseModel):
    job_id: str
    filename: str
    size: int
    # Where its audio waits for a worker (freed when the file is cancelled).
    audio_key: str | None = None
    # Set when the file was refused at upload and never enqueued.
    error: FileError | None = None


class BatchRecord(BaseModel):
    batch_id: str
    created_at: datetime
    files: list[BatchFile]
    # The user who uploaded it (web.auth.user_of): nobody else sees it.
    owner: str = "anonymous"


def record_key(settings: QueueSettings, batch_id: str) -> str:
    return f"{settings.key_prefix}:batch:{batch_id}"


def index_key(settings: QueueSettings, user: str) -> str:
    """A user's batches: a sorted set of batch ids scored by creation time (seconds)."""
    return f"{settings.key_prefix}:batches:{user}"


def record_ttl(settings: QueueSettings) -> int:
    """Long enough for the last file to wait, run and have its result read."""
    return settings.blob_ttl_s + settings.transcribe_timeout_s + settings.result_ttl_s


def safe_filename(raw: str | None, index: int) -> str:
    name = re.split(r"[/\\]", raw or "")[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()[-255:]
    return name or f"file-{index + 1}"


def format_hint(filename: str) -> str | None:
    suffix = filename.rpartition(".")[2].lower() if "." in filename else ""
    return suffix if suffix in AUDIO_FORMATS else None


class _TooLarge(MultiPartException):
    """A file, or the whole body, is over its limit: answered 413."""


class _TooMany(MultiPartException):
    pass


class _BoundedParser(MultiPartParser):
    """Starlette's parser caps form fields but lets files grow (spooled to disk): this caps files too."""

    def __init__(self, request: Request, stream: AsyncGenerator[bytes, None], max_file: int) -> None:
        super().__init__(request.headers, stream, max_files=float("inf"), max_fields=MAX_FILES)
        self.max_file = max_file
        self._files = self._part_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._part_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._part_bytes += end - start
        upload = self._current_part.file
        if upload is not None and self._part_bytes > self.max_file:
            raise _TooLarge(f"{upload.filename or 'A file'} is over the {self.max_file // 2**20} MiB limit per file.")
        super().on_part_data(data, start, end)

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        self._files += self._current_part.file is not None
        if self._files > MAX_FILES:
            raise _TooMany(f"Send at most {MAX_FILES} files per request; split the rest into more batches.")


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _TooLarge(f"The request is over {limit // 2**20} MiB; send the files in several batches.")
        yield chunk


async def read_form(request: Request, max_file: int) -> FormData:
    """The multipart form, reading no more than the limits allow; errors become ApiErrors."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(
            400, ErrorCode.INVALID_REQUEST, "Send the files as multipart/form-data, in a field named 'files'."
        )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BATCH_BYTES:
        raise ApiError(413, ErrorCode.TOO_LARGE, f"The request is over {MAX_BATCH_BYTES // 2**20} MiB; split it.")
    try:
        async with contextlib.aclosing(request.stream()) as stream:
            return await _BoundedParser(request, _capped(stream, MAX_BATCH_BYTES), max_file).parse()
    except _TooLarge as exc:
        raise ApiError(413, ErrorCode.AUDIO_TOO_LARGE, exc.message) from None
    except _TooMany as exc:
        raise ApiError(400, ErrorCode.TOO_MANY_FILES, exc.message) from None
    except MultiPartException as exc:
        raise ApiError(400, ErrorCode.INVALID_REQUEST, f"The multipart body is malformed: {exc.message}") from None


async def create_batch(request: Request) -> JSONResponse:
    s = services(request)
    max_file = min(MAX_AUDIO_BYTES, s.settings.queues.blob_max_bytes)
    form = await read_form(request, max_file)
    try:
        uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
        if not uploads:
            raise ApiError(400, ErrorCode.NO_FILES, "Send one or more audio files in the multipart field 'files'.")
        if all(upload.size == 0 for upload in uploads):
            raise ApiError(400, ErrorCode.EMPTY_AUDIO, "Every file sent is empty: there is nothing to transcribe.")
        record = BatchRecord(batch_id=uuid.uuid4().hex, created_at=datetime.now(UTC), files=[], owner=user_of(request))
        jobs: list[TranscriptionJob] = []
        try:
            for index, upload in enumerate(uploads):
                entry, job = await _store(s, record.batch_id, index, upload, record.owner)
                record.files.append(entry)
                if job is not None:
                    jobs.append(job)
            # The record and every job in one transaction, after each job's cost is reserved:
            # a refusal, or Redis full or away, leaves no job without its batch.
            key, ttl = record_key(s.settings.queues, record.batch_id), record_ttl(s.settings.queues)
            owned = index_key(s.settings.queues, record.owner)

            def also(pipe: Any) -> None:
                pipe.set(key, record.model_dump_json(), ex=ttl)
                pipe.zadd(owned, {record.batch_id: record.created_at.timestamp()})
                pipe.expire(owned, ttl)  # the newest batch's lifetime: the index outlives none of them

            await s.meter.enqueue_all(
                jobs,
                s.settings.queues.batch_queue,
                audio_bytes=[f.size for f in record.files if f.error is None],
                also=also,
            )
        except BaseException:
            with contextlib.suppress(redis.exceptions.RedisError):  # their audio, stored for nothing
                await s.meter.forget_audio(record.owner, [job.audio_key for job in jobs])
            raise
    finally:
        await form.close()
    url = f"/api/transcriptions/{record.batch_id}"
    body = {
        "batch_id": record.batch_id,
        "status_url": url,
        "jobs": [file_view(record.batch_id, f, None) for f in record.files],
    }
    return JSONResponse(body, status_code=202, headers={"Location": url})


async def _store(
    s: Services, batch_id: str, index: int, upload: UploadFile, user: str
) -> tuple[BatchFile, TranscriptionJob | None]:
    """A file's entry in the batch, and its job once its audio is in the blob store (None: refused)."""
    filename = safe_filename(upload.filename, index)
    entry = BatchFile(job_id=f"{batch_id}-{index:03d}", filename=filename, size=upload.size or 0)
    if not entry.size:
        entry.error = FileError(code=ErrorCode.EMPTY_AUDIO, message=f"{filename} is empty: there is nothing to hear.")
        return entry, None
    session_id = f"batch-{batch_id}"
    key = entry.audio_key = await s.meter.store_audio(user, session_id, await upload.read())
    job = TranscriptionJob(
        session_id=session_id,
        job_id=entry.job_id,
        audio_key=key,
        format=format_hint(filename),
        filename=filename,
        user=user,
    )
    return entry, job


async def load_record(s: Services, batch_id: str, user: str) -> BatchRecord:
    """The batch, if `user` uploaded it: another user's batch is as missing as one never made."""
    raw = await s.aredis.get(record_key(s.settings.queues, batch_id)) if BATCH_ID.match(batch_id) else None
    record = BatchRecord.model_validate_json(raw) if raw is not None else None
    if record is None or record.owner != user:
        raise ApiError(
            404, ErrorCode.NOT_FOUND, "No such batch: its id is wrong, it has expired, or it is another user's."
        )
    return record


# RQ's states, as the four a client needs; the odd ones carry an error saying what happened.
_STATES: Final = {"queued": "queued", "deferred": "queued", "scheduled": "queued", "started": "started"}
_ODD_FAILURES: Final = {
    "canceled": FileError(code=ErrorCode.CANCELED, message="The transcription was cancelled."),
    "stopped": FileError(code=ErrorCode.CANCELED, message="The transcription was stopped."),
    "unknown": FileError(
        code=ErrorCode.EXPIRED, message="This job and its result have expired. Upload the file again."
    ),
    "failed": FileError(code=ErrorCode.WORKER_LOST, message="The transcription failed without a reason. Try again."),
    "finished": FileError(code=ErrorCode.ENGINE_FAILED, message="The transcription finished without a transcript."),
}


def file_view(batch_id: str, entry: BatchFile, status: JobStatus | None) -> dict[str, Any]:
    """One file's state (queued, started, finished, failed), progress, and error or text.

    `status` is RQ's word on the file's job; None for a job just enqueued or a file with no job.
    """
    view: dict[str, Any] = {
        "job_id": entry.job_id,
        "filename": entry.filename,
        "result_url": f"/api/transcriptions/{batch_id}/{entry.job_id}",
        "state": "queued",
        "progress": 0.0,
    }
    error = entry.error
    if status is None or error is not None:
        pass
    elif status.state == "finished" and status.result is not None:
        text = status.result.get("text", "")
        view.update(state="finished", progress=1.0, text=text)
        if not text.strip():
            view["no_speech"] = True  # the file decoded, and nobody speaks in it
    elif status.state in _STATES:
        view.update(state=_STATES[status.state], progress=status.progress or 0.0)
    else:
        error = FileError.model_validate(status.error.model_dump()) if status.error else _ODD_FAILURES[status.state]
    if error is not None:
        view.update(state="failed", progress=None, error=error.model_dump())
    return view


async def batch_status(request: Request) -> JSONResponse:
    s = services(request)
    record = await load_record(s, request.path_params["batch_id"], user_of(request))
    return JSONResponse(await batch_view(s, record))


async def batch_view(s: Services, record: BatchRecord) -> dict[str, Any]:
    statuses = await asyncio.gather(*(job_status(s, f) for f in record.files))
    files = [file_view(record.batch_id, f, st) for f, st in zip(record.files, statuses, strict=True)]
    totals = {state: sum(f["state"] == state for f in files) for state in ("queued", "started", "finished", "failed")}
    return {
        "batch_id": record.batch_id,
        "created_at": record.created_at.isoformat(),
        "done": totals["finished"] + totals["failed"] == len(files),
        "totals": {"files": len(files), **totals},
        "files": files,
    }


MAX_PAGE: Final = 50


async def list_batches(request: Request) -> JSONResponse:
    """The user's batches, newest first: `limit` of them (default 10, at most 50) created before
    `before` (a cursor: the `next` of the page before). Batches that expired drop out of the list."""
    s = services(request)
    limit, before = _page_params(request)
    user = user_of(request)
    index = index_key(s.settings.queues, user)
    found = cast(  # withscores: (member, score) pairs
        "list[tuple[bytes, float]]",
        await s.aredis.zrevrangebyscore(index, f"({before}" if before else "+inf", "-inf", 0, limit + 1, True),
    )
    ids = [as_text(raw) for raw, _ in found[:limit]]
    raws = await s.aredis.mget([record_key(s.settings.queues, batch_id) for batch_id in ids]) if ids else []
    records = [BatchRecord.model_validate_json(raw) for raw in raws if raw is not None]
    records = [record for record in records if record.owner == user]  # (the index is the user's own)
    gone = [batch_id for batch_id, raw in zip(ids, raws, strict=True) if raw is None]  # expired
    views = await asyncio.gather(*(batch_view(s, record) for record in records))
    page = [view | {"filenames": [f.filename for f in r.files]} for view, r in zip(views, records, strict=True)]
    if gone:
        await s.aredis.zrem(index, *gone)
    more = len(found) > limit
    return JSONResponse({"batches": page, "next": repr(found[limit - 1][1]) if more else None})


def _page_params(request: Request) -> tuple[int, float | None]:
    raw_limit, raw_before = request.query_params.get("limit", "10"), request.query_params.get("before")
    try:
        limit = int(raw_limit)
        before = float(raw_before) if raw_before else None
    except ValueError:
        raise ApiError(
            400, ErrorCode.INVALID_REQUEST, "limit is a whole number and before the `next` of an earlier page."
        ) from None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, ErrorCode.INVALID_REQUEST, f"limit goes from 1 to {MAX_PAGE}.")
    return limit, before


async def archive(request: Request) -> Response:
    """Every finished transcript of a batch in one zip, as `format`, each named after its upload
    (memo.mp3 -> memo.mp3.srt; a second memo.wav -> memo (2).wav.srt, as the page names them)."""
    fmt = request.query_params.get("format", "srt")
    if fmt not in FORMATS:
        raise ApiError(400, ErrorCode.UNKNOWN_FORMAT, f"Unknown format {fmt!r}; ask for one of: {', '.join(FORMATS)}.")
    s = services(request)
    record = await load_record(s, request.path_params["batch_id"], user_of(request))
    statuses = await asyncio.gather(*(job_status(s, f) for f in record.files))
    buffer = io.BytesIO()
    seen: dict[str, int] = {}
    written = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive_file:
        for entry, status in zip(record.files, statuses, strict=True):
            seen[entry.filename] = count = seen.get(entry.filename, 0) + 1
            if status is None or entry.error or status.state != "finished" or status.result is None:
                continue
            body, _ = render(status.result, fmt)
            archive_file.writestr(f"{numbered(entry.filename, count)}.{fmt}", body)
            written += 1
    if not written:
        raise ApiError(409, ErrorCode.NOT_READY, "No file of this batch is finished yet; ask again when one is.")
    name = f"transcripts-{record.batch_id[:8]}-{fmt}.zip"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)


def numbered(filename: str, count: int) -> str:
    """memo.wav, then memo (2).wav: the n-th file of one name, as browsers number copies."""
    if count == 1:
        return filename
    stem, dot, suffix = filename.rpartition(".")
    return f"{stem} ({count}).{suffix}" if dot and stem else f"{filename} ({count})"


async def job_status(s: Services, entry: BatchFile) -> JobStatus | None:
    """RQ's word on a file's job; None for a file refused at upload (it has no job)."""
    return None if entry.error else await ajob_status(s.redis, entry.job_id)


async def transcript(request: Request) -> Response:
    fmt = request.query_params.get("format", "json")
    if fmt not in FORMATS:
        raise ApiError(400, ErrorCode.UNKNOWN_FORMAT, f"Unknown format {fmt!r}; ask for one of: {', '.join(FORMATS)}.")
    s = services(request)
    record = await load_record(s, request.path_params["batch_id"], user_of(request))
    entry = next((f for f in record.files if f.job_id == request.path_params["job_id"]), None)
    if entry is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "No such file in this batch.")
    status = await job_status(s, entry)
    view = file_view(record.batch_id, entry, status)
    if view["state"] == "failed":
        error = FileError.model_validate(view["error"])
        if error.code == ErrorCode.EXPIRED:
            raise ApiError(404, ErrorCode.NOT_FOUND, error.message)
        raise ApiError(422, error.code, error.message)
    if view["state"] != "finished":
        raise ApiError(409, ErrorCode.NOT_READY, f"{entry.filename} is {view['state']}; ask again when it is finished.")
    assert status is not None and status.result is not None
    body, media_type = render(status.result, fmt)
    headers = {"Content-Disposition": content_disposition(entry.filename, fmt)}
    return Response(body, media_type=media_type, headers=headers)


async def cancel_batch(request: Request) -> JSONResponse:
    """Cancel every file of a batch; what happened to each (see `cancel_file`)."""
    s = services(request)
    record = await load_record(s, request.path_params["batch_id"], user_of(request))
    return _cancelled(record, [await _cancel(s, entry, record.owner) for entry in record.files])


async def cancel_file(request: Request) -> JSONResponse:
    """Cancel one file: `canceled` (it was waiting and will not run), `stopping` (it is being
    transcribed and stops at the end of its current piece), or `ended` (it had ended already)."""
    s = services(request)
    record = await load_record(s, request.path_params["batch_id"], user_of(request))
    entry = next((f for f in record.files if f.job_id == request.path_params["job_id"]), None)
    if entry is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "No such file in this batch.")
    return _cancelled(record, [await _cancel(s, entry, record.owner)])


async def _cancel(s: Services, entry: BatchFile, user: str) -> dict[str, str]:
    outcome = "ended" if entry.error else await s.jobs.astop(entry.job_id)
    if outcome == "canceled":
        await s.meter.release(entry.job_id)  # it will not run: its hold goes back
        if entry.audio_key is not None:  # nor will its audio be read: freed, off the user's share
            await s.meter.forget_audio(user, [entry.audio_key])
    return {"job_id": entry.job_id, "filename": entry.filename, "cancel": outcome}


def _cancelled(record: BatchRecord, files: list[dict[str, str]]) -> JSONResponse:
    """202 while a file is still stopping, else 200; the batch's status says when it has."""
    stopping = any(f["cancel"] == "stopping" for f in files)
    url = f"/api/transcriptions/{record.batch_id}"
    body = {"batch_id": record.batch_id, "status_url": url, "files": files}
    return JSONResponse(body, status_code=202 if stopping else 200)


routes = [
    Route("/api/transcriptions", create_batch, methods=["POST"]),
    Route("/api/transcriptions", list_batches, methods=["GET"]),
    Route("/api/transcriptions/{batch_id}/archive", archive, methods=["GET"]),
    Route("/api/transcriptions/{batch_id}", batch_status, methods=["GET"]),
    Route("/api/transcriptions/{batch_id}", cancel_batch, methods=["DELETE"]),
    Route("/api/transcriptions/{batch_id}/{job_id}", transcript, methods=["GET"]),
    Route("/api/transcriptions/{batch_id}/{job_id}", cancel_file, methods=["DELETE"]),
]
