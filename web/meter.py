"""The one meter every job goes through before it is enqueued: chat turns, microphone streams,
REST (`/api/transcriptions`, `/api/speech`), the OpenAI-compatible routes and the CLI's path
through the app. Each job's cost is reserved against its user's budgets (and the turn's, and the
speaking member's) in the ledger first; a job a budget cannot cover, or a frozen user's, is refused
with `BudgetExceeded` (which says which budget and when it resets) and never enqueued. The worker
settles the reservation with what the job used; a job that will not run gives its hold back.

The app owns it (`Services.meter`), built from the settings whatever answers turns, so a council,
the echo responder and REST calls are held to the same limits. It also meters the audio users
store, every byte they cause to be stored (uploads, recordings, /v1 files, and the clips their
answers are spoken in, which the worker counts): a user may hold a share of Redis's `maxmemory`
(at most `blob_quota_bytes`), all users together all but a reserve of it, as bytes stored in the
last blob lifetime (queues/_storage.py); what is heard, cancelled or refused is freed at once.
So one user's audio cannot fill Redis for everyone.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from council import Budgets, Payer
from queues import AsyncBlobStore, AsyncStorage, BlobTooLarge, JobClient
from shared_schemas import ErrorCode, JobPayload, ListenJob, Refusal, SynthesisJob, TranscriptionJob

from .streams import OpenStreams


class QuotaExceeded(Refusal):
    """A user's stored audio would pass their quota: the message says how much and for how long."""

    code = ErrorCode.AUDIO_QUOTA
    status = 429


class StorageFull(Refusal):
    """Stored audio, all users together, is at the share of Redis it may take: the rest is kept for
    jobs, events and the turns under way."""

    code = ErrorCode.STORAGE_FULL
    status = 503


# What a spoken answer stores per character of text, at most as measured (10.5 MiB for a
# 4000-character answer): a sentence is refused before it is spoken when this would pass a limit.
CLIP_BYTES_PER_CHAR = 2752
LIMITS_TTL_S = 30.0


@dataclass(frozen=True)
class StorageLimits:
    """What one user's stored audio may reach, and all users' together (0: no limit), from Redis's
    `maxmemory`: a user gets `user_share` of it (at most `quota_bytes`), everyone together all but
    `reserve` of it, which stays for jobs, events and the other users' turns."""

    user_bytes: int
    total_bytes: int
    maxmemory: int

    @classmethod
    def of(cls, maxmemory: int, quota_bytes: int, user_share: float, reserve: float) -> "StorageLimits":
        if maxmemory <= 0:  # Redis without a limit: the quota alone
            return cls(user_bytes=quota_bytes, total_bytes=0, maxmemory=0)
        total = int(maxmemory * (1 - reserve))
        return cls(
            user_bytes=min(quota_bytes, int(maxmemory * user_share), total), total_bytes=total, maxmemory=maxmemory
        )


class Meter:
    def __init__(
        self,
        budgets: Budgets,
        jobs: JobClient,
        blobs: AsyncBlobStore,
        quota_bytes: int,
        user_share: float = 0.1,
        reserve: float = 0.3,
        streams: OpenStreams | None = None,
    ) -> None:
        self.budgets = budgets
        self.jobs = jobs
        self.blobs = blobs
        self.quota_bytes = quota_bytes
        self.user_share = user_share
        self.reserve = reserve
        self.storage = AsyncStorage(blobs.settings, blobs.connection)
        self._limits: tuple[float, StorageLimits] | None = None
        self.streams = streams or OpenStreams(blobs.settings, blobs.connection, cap=0)

    async def limits(self) -> StorageLimits:
        """The storage limits, from Redis's `maxmemory` as it is now (read again every 30 s)."""
        now = time.monotonic()
        if self._limits is None or now - self._limits[0] > LIMITS_TTL_S:
            try:
                maxmemory = int((await self.blobs.connection.info("memory")).get("maxmemory", 0))
            except redis.exceptions.ResponseError:  # INFO denied to this user (ACL): the quota alone
                maxmemory = 0
            self._limits = (now, StorageLimits.of(maxmemory, self.quota_bytes, self.user_share, self.reserve))
        return self._limits[1]

    async def store_audio(self, user: str, session_id: str, data: bytes, suffix: str = "") -> str:
        """Put a user's audio in the blob store, within their share and everyone's; its key."""
        if len(data) > self.blobs.settings.blob_max_bytes:
            raise BlobTooLarge(len(data), self.blobs.settings.blob_max_bytes)
        limits = await self.limits()
        key = self.blobs.new_key(session_id, suffix)
        refused = await self.storage.put(user, key, data, limits.user_bytes, limits.total_bytes)
        if refused is not None:
            raise self._refusal(limits, len(data), *refused)
        return key

    async def _check(self, user: str, size: int) -> None:
        """Refuse work that would store `size` more bytes for `user` (a sentence to speak: the
        worker counts its clips when it stores them) past their share or everyone's."""
        limits = await self.limits()
        user_held, total_held = await self.storage.held(user)
        if user_held + size > limits.user_bytes or (limits.total_bytes and total_held + size > limits.total_bytes):
            raise self._refusal(limits, size, user_held, total_held)

    def _refusal(self, limits: StorageLimits, size: int, user_held: int, total_held: int) -> Refusal:
        ttl = self.blobs.settings.blob_ttl_s
        if user_held + size > limits.user_bytes:
            return QuotaExceeded(
                f"You have stored {user_held / 2**20:.0f} MiB of audio (recordings, files and the answers' "
                f"speech) in the last {ttl // 60} minutes; the limit is {limits.user_bytes / 2**20:.0f} MiB, "
                "and this would pass it. Wait for your files to be transcribed or listen to the answers "
                "(what is done or heard is freed), or send less at once."
            )
        return StorageFull(
            f"The server's store for audio holds {total_held / 2**20:.0f} MiB, as much as it may "
            f"({limits.total_bytes / 2**20:.0f} MiB; the rest is kept for the turns under way), so nothing "
            "was stored. Try again in a minute."
        )

    async def forget_audio(self, user: str, keys: list[str]) -> None:
        """Audio stored for jobs that were then refused, cancelled or read: deleted, and taken off
        the user's share (by the sizes counted when it was stored)."""
        await self.storage.forget(user, keys)

    async def heard(self, user: str, session_id: str, turn_id: str, before: int | None) -> int:
        """The clips of a turn the page played (before sentence `before`; None: all): freed."""
        return await self.storage.heard(user, session_id, turn_id, before)

    async def enqueue(self, job: JobPayload, queue: str | None = None, *, audio_bytes: int = 0) -> None:
        """Reserve `job`'s cost from its user's budgets, then enqueue it; raises BudgetExceeded
        (nothing enqueued) when a budget cannot cover it."""
        await self.enqueue_all([job], queue, audio_bytes=[audio_bytes])

    async def enqueue_all(
        self,
        jobs: Sequence[JobPayload],
        queue: str | None = None,
        *,
        audio_bytes: Sequence[int] | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> None:
        """Reserve every job's cost, then enqueue them all (and what `also` writes) in one
        transaction. A refusal, or Redis failing, leaves nothing enqueued and no hold taken."""
        held: list[str] = []
        opened: list[ListenJob] = []
        try:
            for job, size in zip(jobs, audio_bytes or [0] * len(jobs), strict=True):
                await self._reserve(job, size)
                if isinstance(job, SynthesisJob | TranscriptionJob):
                    held.append(job.job_id)
                elif isinstance(job, ListenJob):
                    opened.append(job)
            await self.jobs.aenqueue_all(jobs, queue, also)
        except BaseException:
            for job_id in held:
                await self.budgets.release_job(job_id)
            for listen in opened:
                await self.streams.close(listen.user or "anonymous", listen.job_id)
            raise

    async def _reserve(self, job: JobPayload, audio_bytes: int) -> None:
        if isinstance(job, SynthesisJob):  # the clips it will store must fit the user's share
            await self._check(job.user or "anonymous", len(job.text) * CLIP_BYTES_PER_CHAR)
        if isinstance(job, SynthesisJob | TranscriptionJob):
            await self.budgets.reserve_job(
                Payer(job.user or "anonymous", job.session_id, job.turn_id), job, audio_bytes
            )
        elif isinstance(job, ListenJob):
            # A stream's recognition is charged turn by turn as the listener settles it; a user who
            # may not spend is refused before the microphone opens.
            await self.budgets.check_user(job.user or "anonymous")
            await self.streams.open(job.user or "anonymous", job.job_id)  # within the user's cap

    async def listening(self, user: str, stream_id: str) -> None:
        """An open microphone, once a second while its frames come: its place is kept, and its
        user's budget looked at again (`BudgetExceeded` when spent: the stream is closed)."""
        await self.streams.keep(user, stream_id)
        await self.budgets.check_user(user)

    async def release(self, job_id: str) -> None:
        """A reserved job that will not run (cancelled while queued): its hold goes back."""
        await self.budgets.release_job(job_id)
