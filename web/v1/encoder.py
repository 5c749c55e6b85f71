"""Speech in the formats OpenAI's clients ask for, by one `ffmpeg` process per request.

The workers speak 16-bit mono WAV clips; `Encoder` takes their samples as they come (raw PCM16 at
one rate) on ffmpeg's stdin and yields what ffmpeg writes on stdout as soon as it writes it, so
an mp3 starts playing while later sentences are still being spoken. `speed` is ffmpeg's `atempo`
(the tempo changes, the pitch does not), chained because one atempo stays within 0.5-2.0.

ffmpeg runs as a subprocess, never on the event loop's thread, and is killed when the request
ends early (the client left, a job failed).

A FLAC written to a pipe has no length (ffmpeg cannot go back to fill in its STREAMINFO's total
samples), so players show no duration and cannot seek: `whole` encodes a complete clip to a
temporary file instead, which ffmpeg finishes with its length, as a WAV's header holds its own.
"""

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

log = logging.getLogger(__name__)

FFMPEG: Final = "ffmpeg"
READ_BYTES: Final = 16 * 1024
# Output options per format: codec, container, bit rate. Ogg Opus wants 48 kHz.
OUTPUTS: Final[dict[str, tuple[str, ...]]] = {
    "mp3": ("-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"),
    "opus": ("-ar", "48000", "-c:a", "libopus", "-b:a", "32k", "-f", "ogg"),
    "aac": ("-c:a", "aac", "-b:a", "64k", "-f", "adts"),
    "flac": ("-c:a", "flac", "-f", "flac"),
    "pcm": ("-c:a", "pcm_s16le", "-f", "s16le"),
}
MEDIA_TYPES: Final = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "pcm": "audio/pcm",
    "wav": "audio/wav",
}


class EncoderFailed(Exception):
    """ffmpeg is missing, or failed: the message has what it said."""


def tempo_filters(speed: float) -> list[str]:
    """`atempo` factors, each within 0.5-2.0, whose product is `speed` (none for 1.0)."""
    factors, rest = [], speed
    while rest > 2.0:
        factors.append(2.0)
        rest /= 2.0
    while rest < 0.5:
        factors.append(0.5)
        rest /= 0.5
    if abs(rest - 1.0) > 1e-9:
        factors.append(rest)
    return [f"atempo={factor:.6g}" for factor in factors]


class Encoder:
    def __init__(self, fmt: str, sample_rate: int, speed: float = 1.0) -> None:
        if fmt not in OUTPUTS:
            raise ValueError(f"no encoder for {fmt!r}; formats: {', '.join(OUTPUTS)}")
        self.args = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error"]
        self.args += ["-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0"]
        if filters := tempo_filters(speed):
            self.args += ["-filter:a", ",".join(filters)]
        self.args += list(OUTPUTS[fmt])

    async def whole(self, pcm: bytes) -> bytes:
        """The encoding of all of `pcm` at once, written to a seekable file (FLAC's length)."""
        if shutil.which(FFMPEG) is None:
            raise EncoderFailed("ffmpeg is not installed on the app's machine (Debian: apt-get install ffmpeg).")
        with tempfile.NamedTemporaryFile(suffix=".out") as out:
            proc = await asyncio.create_subprocess_exec(
                *self.args,
                "-y",
                out.name,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, said = await proc.communicate(pcm)
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await asyncio.shield(proc.wait())
            if proc.returncode != 0:
                raise EncoderFailed(
                    f"ffmpeg failed ({proc.returncode}): {said.decode(errors='replace').strip()[-500:]}"
                )
            return await asyncio.to_thread(_read, out.name)

    async def encode(self, pcm: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        """What ffmpeg makes of `pcm`, piece by piece. An error of `pcm` (a failed job) is raised
        after ffmpeg has written what it got; ffmpeg's own failure raises EncoderFailed."""
        if shutil.which(FFMPEG) is None:
            raise EncoderFailed("ffmpeg is not installed on the app's machine (Debian: apt-get install ffmpeg).")
        proc = await asyncio.create_subprocess_exec(
            *self.args,
            "pipe:1",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feeding = asyncio.create_task(self._feed(pcm, proc.stdin))
        try:
            while chunk := await proc.stdout.read(READ_BYTES):
                yield chunk
            await feeding  # the input's own error, if it had one
            said = (await proc.stderr.read()).decode(errors="replace").strip()
            if await proc.wait() != 0:
                raise EncoderFailed(f"ffmpeg failed ({proc.returncode}): {said[-500:]}")
        finally:
            feeding.cancel()
            await asyncio.wait([feeding])  # its input closed (a job cancelled) before this returns
            if not feeding.cancelled():
                feeding.exception()  # raised above already, or of no interest once the client left
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.shield(proc.wait())

    @staticmethod
    async def _feed(pcm: AsyncIterator[bytes], stdin: asyncio.StreamWriter) -> None:
        try:
            async for chunk in pcm:
                stdin.write(chunk)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.warning("ffmpeg stopped reading its input")
        finally:
            stdin.close()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
