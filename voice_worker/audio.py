"""Audio in memory, decoding what users send, and encoding what the worker returns.

`decode` trusts the bytes, not the name: it sniffs the container from its magic number and uses the
caller's format hint only when the bytes do not tell. wav, flac, ogg/vorbis and mp3 go through
libsndfile (soundfile); webm, ogg/opus and whatever libsndfile refuses go through an `ffmpeg`
subprocess told the exact input format, so ffmpeg never guesses (and never opens playlists).

A small file can decode to hours of samples (silence compresses to almost nothing, and a header
can lie or say nothing), so the caps hold while decoding, not only from the header: libsndfile is
read block by block, mixed down and resampled as it goes, and ffmpeg's output is read until it
passes the cap. Memory peaks at about the capped output (`max_seconds` at `sample_rate`, float32),
whatever the file says.
"""

import io
import math
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from shared_schemas import (
    AUDIO_FORMATS,
    MAX_AUDIO_BYTES,
    MAX_AUDIO_SECONDS,
    MIN_AUDIO_SECONDS,
    STT_SAMPLE_RATE,
    ErrorCode,
)

from .errors import EngineLoadError, VoiceError

FFMPEG_TIMEOUT_S = 120.0
# Sample rates a file may say it has: below and above these it is broken, not audio.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
# Raw samples (frames x channels) decoded per second of the duration cap: 48 kHz in 4 channels or
# 96 kHz stereo. Bounds the work a file with many channels or a high rate can ask for.
MAX_SAMPLES_PER_SECOND = 192_000
# libsndfile's length of a file that does not tell it (a streamed FLAC): SF_COUNT_MAX. libsndfile
# fails reading such a file at its end, so ffmpeg reads it.
_UNKNOWN_FRAMES = 2**63 - 1
# Samples read from libsndfile at a time, over all channels (4 MiB of float32).
BLOCK_SAMPLES = 1 << 20
_ACCEPTED = ", ".join(AUDIO_FORMATS)
# ffmpeg demuxer per accepted container.
_DEMUXERS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "mp3": "mp3", "webm": "matroska"}
_HINT_ALIASES = {"wave": "wav", "xwav": "wav", "mpeg": "mp3", "mpga": "mp3", "oga": "ogg", "opus": "ogg"}
# Files we recognize and do not accept (audio in other containers, and common non-audio files),
# by the magic they start with; RIFF kinds and MP4 are told apart in `sniff`.
_FOREIGN = {
    b"FORM": "aiff", b".snd": "au", b"caff": "caf", b"MThd": "midi", b"#!AMR": "amr", b"wvpk": "wavpack",
    b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"%PDF": "pdf", b"PK\x03\x04": "zip",
}  # fmt: skip


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(
    data: bytes,
    format_hint: str | None = None,
    *,
    sample_rate: int = STT_SAMPLE_RATE,
    max_seconds: float = MAX_AUDIO_SECONDS,
) -> Audio:
    """Decode user audio to mono float32 at `sample_rate`; raises VoiceError saying what is wrong."""
    if not data:
        raise VoiceError(ErrorCode.EMPTY_AUDIO, "The audio is empty (0 bytes). Record or upload some speech.")
    if len(data) > MAX_AUDIO_BYTES:
        raise VoiceError(
            ErrorCode.AUDIO_TOO_LARGE,
            f"The audio is {len(data) / 2**20:.1f} MiB; the limit is {MAX_AUDIO_BYTES / 2**20:.0f} MiB. "
            "Send a shorter or more compressed recording.",
        )
    container = sniff(data) or _from_hint(format_hint)
    if container is None:
        raise VoiceError(
            ErrorCode.UNDECODABLE_AUDIO,
            f"The audio could not be decoded: it is not a recognizable audio file. Send one of: {_ACCEPTED}.",
        )
    if container not in AUDIO_FORMATS:
        raise VoiceError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"Files in {container} format are not accepted. Send audio in one of: {_ACCEPTED}.",
        )
    if container == "wav" and _wav_truncated(data):
        raise _undecodable(container)
    opened = None if container == "webm" or _is_opus(data) else _open_with_libsndfile(data)
    if opened is None:
        samples = _ffmpeg(data, container, sample_rate, max_seconds)
    else:
        with opened:
            samples = _soundfile(opened, container, sample_rate, max_seconds)
    return _checked(Audio(samples, sample_rate), max_seconds)


def sniff(data: bytes) -> str | None:
    """The container the bytes' magic number names, accepted or not; None when unrecognized."""
    head = data[:12]
    if head[:4] == b"RIFF":
        # A RIFF cut before its whole form type, where what is left of it fits WAVE, is a broken WAV.
        return "wav" if b"WAVE".startswith(head[8:12]) else _name(head[8:12]) or "riff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG frame sync; layer bits 00 are AAC's ADTS, which we do not accept.
        return "mp3" if head[1] & 0x06 else "aac"
    if head[4:8] == b"ftyp":
        return "mp4"
    return next((name for magic, name in _FOREIGN.items() if head.startswith(magic)), None)


def encode_wav(audio: Audio) -> bytes:
    """16-bit PCM WAV bytes of `audio`."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio.samples, -1.0, 1.0), audio.sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def resample(audio: Audio, sample_rate: int) -> Audio:
    """`audio` at `sample_rate` (the same object when it is already there)."""
    if audio.sample_rate == sample_rate:
        return audio
    if len(audio.samples) == 0:
        return Audio(np.zeros(0, dtype=np.float32), sample_rate)
    samples = soxr.resample(audio.samples, audio.sample_rate, sample_rate, quality="HQ")
    return Audio(np.asarray(samples, dtype=np.float32), sample_rate)


def _from_hint(format_hint: str | None) -> str | None:
    if not format_hint:
        return None
    name = _name(format_hint.split(";")[0].split("/")[-1].encode())
    return _HINT_ALIASES.get(name, name) or None


def _name(raw: bytes) -> str:
    """A format name fit to quote back to the user: lower-case letters and digits, at most 16."""
    return "".join(c for c in raw.decode("ascii", "replace").lower() if c.isascii() and c.isalnum())[:16]


def _wav_truncated(data: bytes) -> bool:
    """Whether the WAV ends before its data chunk, or that chunk promises more bytes than it holds.

    libsndfile quietly plays what is there. A size over MAX_AUDIO_BYTES is a streaming writer's
    placeholder (espeak-ng writes 0x7ffff000), not a promise.
    """
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"data":
            return size <= MAX_AUDIO_BYTES and len(data) - (pos + 8) + 16 < size
        pos += 8 + size + (size & 1)
    return True


def _is_opus(data: bytes) -> bool:
    return data[:4] == b"OggS" and b"OpusHead" in data[:512]


def _open_with_libsndfile(data: bytes) -> sf.SoundFile | None:
    """The file opened by libsndfile, or None when libsndfile does not read it (ffmpeg may)."""
    try:
        opened = sf.SoundFile(io.BytesIO(data))
    except sf.LibsndfileError:
        return None
    if opened.frames == _UNKNOWN_FRAMES:
        opened.close()
        return None
    return opened


def _soundfile(f: sf.SoundFile, container: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Mono samples at `sample_rate` through libsndfile, a block at a time, stopping at the caps."""
    rate, channels = f.samplerate, f.channels
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise VoiceError(
            ErrorCode.UNDECODABLE_AUDIO,
            f"The {container} file says its sample rate is {rate} Hz; audio between {MIN_SAMPLE_RATE} and "
            f"{MAX_SAMPLE_RATE} Hz is accepted. The file may be damaged.",
        )
    max_frames = math.floor(max_seconds * rate)
    max_samples = math.floor(max_seconds * MAX_SAMPLES_PER_SECOND)
    # The header's length first; it can lie or be missing (streamed files), so the reading counts too.
    if f.frames > max_frames:
        raise _too_long(f.frames / rate, max_seconds)
    if f.frames * channels > max_samples:
        raise _too_many_samples(channels, rate, max_samples)
    out = _Resampler(rate, sample_rate)
    frames, block = 0, max(1, BLOCK_SAMPLES // channels)
    while True:
        try:
            chunk = f.read(frames=block, dtype="float32", always_2d=True)
        except sf.LibsndfileError:
            raise _undecodable(container) from None
        if not len(chunk):
            return out.finish()
        frames += len(chunk)
        if frames > max_frames:
            raise _too_long(None, max_seconds)
        if frames * channels > max_samples:
            raise _too_many_samples(channels, rate, max_samples)
        out.add(_finite(chunk.mean(axis=1, dtype=np.float32)))


class _Resampler:
    """Mono blocks resampled as they come into one growing buffer, so the output is never copied."""

    def __init__(self, rate: int, sample_rate: int) -> None:
        self._stream = None
        if rate != sample_rate:
            self._stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
        self._buffer = bytearray()

    def add(self, mono: np.ndarray) -> None:
        self._buffer += (mono if self._stream is None else self._stream.resample_chunk(mono)).tobytes()

    def finish(self) -> np.ndarray:
        if self._stream is not None:
            self._buffer += self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True).tobytes()
        return np.frombuffer(self._buffer, dtype=np.float32)


def _ffmpeg(data: bytes, container: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 samples at `sample_rate`, decoded by ffmpeg; its output is cut off past the cap."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise EngineLoadError("ffmpeg is not installed on this worker; it is needed to decode webm and opus audio.")
    command = [
        binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "pipe",
        "-f", _DEMUXERS[container], "-i", "pipe:0", "-vn", "-t", f"{max_seconds + 1:.3f}",
        "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    limit = (math.floor(max_seconds * sample_rate) + 1) * 4  # bytes: one sample past the cap is too long
    deadline = time.monotonic() + FFMPEG_TIMEOUT_S
    output = bytearray()
    # The input goes in from a file, so that reading the output needs no second thread to write it.
    with tempfile.TemporaryFile() as source:
        source.write(data)
        source.seek(0)
        with subprocess.Popen(command, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
            assert proc.stdout is not None
            try:
                while chunk := _read(proc.stdout.fileno(), deadline, container):
                    output += chunk
                    if len(output) > limit:
                        raise _too_long(None, max_seconds)
                returncode = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise _too_slow(container) from None
            finally:
                if proc.poll() is None:
                    proc.kill()
    if returncode != 0:
        raise _undecodable(container)
    return _finite(np.frombuffer(output, dtype="<f4", count=len(output) // 4))


def _read(fd: int, deadline: float, container: str) -> bytes:
    """The next piece of ffmpeg's output (b"" at its end), or _too_slow past the deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
        raise _too_slow(container)
    return os.read(fd, 1 << 20)


def _finite(samples: np.ndarray) -> np.ndarray:
    """`samples`, once no NaN or infinity is among them (checked in blocks: no big temporary)."""
    for start in range(0, len(samples), BLOCK_SAMPLES):
        if not np.isfinite(samples[start : start + BLOCK_SAMPLES]).all():
            raise VoiceError(
                ErrorCode.UNDECODABLE_AUDIO,
                "The audio contains invalid samples (NaN or infinity). Send a recording from a microphone or file.",
            )
    return samples


def _checked(audio: Audio, max_seconds: float) -> Audio:
    if audio.duration_s > max_seconds:
        raise _too_long(None, max_seconds)
    if audio.duration_s < MIN_AUDIO_SECONDS:
        raise VoiceError(
            ErrorCode.EMPTY_AUDIO,
            f"The audio is only {audio.duration_s:.2f} s long; send at least {MIN_AUDIO_SECONDS:g} s of speech.",
        )
    np.clip(audio.samples, -1.0, 1.0, out=audio.samples)
    return audio


def _too_long(duration_s: float | None, max_seconds: float) -> VoiceError:
    length = f"{duration_s:.1f} s long" if duration_s is not None else f"longer than {max_seconds:g} s"
    return VoiceError(
        ErrorCode.AUDIO_TOO_LONG,
        f"The audio is {length}; the limit is {max_seconds:g} s. Send a shorter recording or split it.",
    )


def _too_many_samples(channels: int, rate: int, max_samples: int) -> VoiceError:
    return VoiceError(
        ErrorCode.AUDIO_TOO_LARGE,
        f"The audio decodes to more than {max_samples:,} samples ({channels} channels at {rate} Hz), the limit. "
        "Send it in fewer channels, at a lower sample rate, or shorter.",
    )


def _too_slow(container: str) -> VoiceError:
    return VoiceError(
        ErrorCode.UNDECODABLE_AUDIO,
        f"The {container} audio took longer than {FFMPEG_TIMEOUT_S:.0f} s to decode. "
        f"Send a shorter recording or another format ({_ACCEPTED}).",
    )


def _undecodable(container: str) -> VoiceError:
    return VoiceError(
        ErrorCode.UNDECODABLE_AUDIO,
        f"The {container} file could not be decoded: it may be truncated or damaged. "
        f"Send a complete file in one of: {_ACCEPTED}.",
    )
