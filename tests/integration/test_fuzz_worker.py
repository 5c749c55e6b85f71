"""Hostile audio through real transcription jobs: each malformed blob the app stores is answered by
a `failed` event with a code and a message, and the voice worker lives on to answer a ping.

The blobs are made at test time from a flite clip (ffmpeg encodes, the test damages) and a seeded
random generator, so every run sends the same ones.
"""

import asyncio
import random
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from queues import AsyncBlobStore, EventHub, JobClient
from shared_schemas import ErrorCode, EventType, PingJob, TranscriptionJob

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(300)]

ENCODINGS = {
    "wav": ["-f", "wav"],
    "flac": ["-f", "flac"],
    "mp3": ["-f", "mp3"],
    "ogg": ["-c:a", "libvorbis", "-f", "ogg"],
    "opus": ["-c:a", "libopus", "-f", "ogg"],
    "webm": ["-c:a", "libopus", "-f", "webm"],
}
# What a blob's failure must say, where the blob decides it; the rest may fail as any input error.
INPUT_ERRORS = {c for c in ErrorCode} - {ErrorCode.ENGINE_FAILED, ErrorCode.TIMEOUT, ErrorCode.WORKER_LOST}


def ffmpeg(*args: str | Path, data: bytes | None = None) -> bytes:
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *map(str, args)]
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def wav_header(channels: int = 1, rate: int = 16_000, bits: int = 16, tag: int = 1, declared: int = 32_000) -> bytes:
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, (rate * channels * bits // 8) % 2**32, channels * bits // 8 % 2**16, bits
    )
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", declared) + bytes(32_000)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def flac_streaminfo(flac: bytes, rate: int | None = None, total: int | None = None) -> bytes:
    packed = int.from_bytes(flac[18:26], "big")
    if rate is not None:
        packed = (packed & (2**44 - 1)) | rate << 44
    if total is not None:
        packed = (packed & ~(2**36 - 1)) | total
    return flac[:18] + packed.to_bytes(8, "big") + flac[26:]


def malformed(clip: bytes, folder: Path) -> dict[str, tuple[bytes, str | None, ErrorCode | None]]:
    """name -> (blob, format hint, the code it must fail with, or None for any input error)."""
    rng = random.Random(6)
    valid = {name: ffmpeg("-f", "wav", "-i", "pipe:0", *args, "pipe:1", data=clip) for name, args in ENCODINGS.items()}
    blobs: dict[str, tuple[bytes, str | None, ErrorCode | None]] = {
        "one zero byte": (b"\x00", None, ErrorCode.UNDECODABLE_AUDIO),
        "text": (b"please transcribe me\n" * 50, "wav", ErrorCode.UNDECODABLE_AUDIO),
        "png": (b"\x89PNG\r\n\x1a\n" + bytes(200), None, ErrorCode.UNSUPPORTED_FORMAT),
        "pdf": (b"%PDF-1.7\n" + bytes(200), "mp3", ErrorCode.UNSUPPORTED_FORMAT),
        "mp4": (bytes(4) + b"ftypisom" + bytes(200), None, ErrorCode.UNSUPPORTED_FORMAT),
        "wav rate 0": (wav_header(rate=0), None, ErrorCode.UNDECODABLE_AUDIO),
        "wav rate 4 GHz": (wav_header(rate=4_000_000_000), None, ErrorCode.UNDECODABLE_AUDIO),
        "wav rate 1 Hz": (wav_header(rate=1), None, ErrorCode.UNDECODABLE_AUDIO),
        "wav 0 channels": (wav_header(channels=0), None, ErrorCode.UNDECODABLE_AUDIO),
        "wav 65535 channels": (wav_header(channels=65535), None, ErrorCode.UNDECODABLE_AUDIO),
        "wav 0 bits": (wav_header(bits=0), None, ErrorCode.UNDECODABLE_AUDIO),
        "wav unknown codec": (wav_header(tag=0x4242), None, ErrorCode.UNDECODABLE_AUDIO),
        "wav data promised, missing": (wav_header(declared=2**25)[:2000], None, ErrorCode.UNDECODABLE_AUDIO),
        "wav of 10 ms": (wav_header(declared=320)[: 44 + 320], None, ErrorCode.EMPTY_AUDIO),
        "flac rate 0": (flac_streaminfo(valid["flac"], rate=0), "flac", None),
        "flac total 2**36-1": (flac_streaminfo(valid["flac"], total=2**36 - 1), None, ErrorCode.AUDIO_TOO_LONG),
    }
    for size in (1, 17, 512, 4096, 65_536):
        blobs[f"{size} random bytes"] = (rng.randbytes(size), rng.choice([None, "wav", "webm"]), None)
    for name, data in valid.items():
        blobs[f"{name} cut to 40 bytes"] = (data[:40], None, None)
        blobs[f"{name} cut to 300 bytes"] = (
            data[:300],
            name if name in ("wav", "flac", "mp3", "ogg", "webm") else None,
            None,
        )
        flipped = bytearray(data[:200])  # too short to hold 0.1 s of speech in any of them
        for _ in range(16):
            flipped[rng.randrange(len(flipped))] ^= rng.randrange(1, 256)
        blobs[f"{name} head, flipped"] = (bytes(flipped), None, None)
    # Three hours of silence in under 2 MiB, whose header does not say how long: cut off at the cap.
    minute = ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", 60, "-c:a", "flac", "-f", "flac", "pipe:1")
    (folder / "minute.flac").write_bytes(minute)
    hours = ffmpeg(
        "-stream_loop", -1, "-i", folder / "minute.flac", "-t", 3 * 3600, "-c", "copy", "-f", "flac", "pipe:1"
    )
    blobs["three hours of silence"] = (flac_streaminfo(hours, total=0), "flac", ErrorCode.AUDIO_TOO_LONG)
    return blobs


async def run_all(settings, jobs: list[tuple[bytes, str | None]], session_id: str) -> list[list]:
    """Each blob stored and transcribed, one job after another; each job's events."""
    conn = settings.connect_async()
    hub = EventHub(settings, conn)
    await hub.start()
    try:
        client, blobs, results = JobClient(settings, aconnection=conn), AsyncBlobStore(settings, conn), []
        for index, (data, hint) in enumerate(jobs):
            key = await blobs.put(session_id, data)
            job = TranscriptionJob(session_id=session_id, job_id=f"{session_id}-{index}", audio_key=key, format=hint)
            results.append([e async for e in client.arun(hub, job, timeout=120)])
        ping = PingJob(session_id=session_id, job_id=f"{session_id}-ping")
        results.append([e async for e in client.arun(hub, ping, timeout=30)])
        return results
    finally:
        await hub.close()
        await conn.aclose()


def test_malformed_blobs_each_fail_as_data_and_the_worker_lives_on(settings, worker, flite, tmp_path):
    blobs = malformed(flite("the quick brown fox jumps over the lazy dog"), tmp_path)
    assert len(blobs) >= 30
    assert max(len(data) for data, _, _ in blobs.values()) < 2 * 2**20
    session_id = f"fuzz-{uuid.uuid4().hex[:12]}"
    *answers, pong = asyncio.run(run_all(settings, [(data, hint) for data, hint, _ in blobs.values()], session_id))

    for (name, (_, _, expected)), events in zip(blobs.items(), answers, strict=True):
        assert [e.type for e in events] == [EventType.FAILED], f"{name}: {[e.type for e in events]}"
        error = events[0].payload.model_dump(mode="json")
        assert set(error) >= {"code", "message"} and error["message"].strip(), name
        if expected is None:
            assert error["code"] in INPUT_ERRORS, f"{name}: {error}"
        else:
            assert error["code"] == expected, f"{name}: {error}"
        assert error["retryable"] is False, name
    assert worker.poll() is None, "the voice worker died"
    assert [e.type for e in pong] == [EventType.PONG]
