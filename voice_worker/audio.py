"""Audio in memory, decoding what users send, and encoding what the worker returns.

`decode` trusts the bytes, not the name: it sniffs the container from its magic number and uses the
caller's format hint only when the bytes do not tell. wav, flac, ogg/vorbis and mp3 go through
libsndfile (soundfile); webm, ogg/opus and whatever libsndfile refuses go through an `ffmpeg`
subprocess told the exact input format, so ffmpeg never guesses (and never opens playlists).
"""

import io
import math
import shutil
import subprocess
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
        audio = Audio(_ffmpeg(data, container, sample_rate, max_seconds), sample_rate)
    else:
        with opened:
            audio = _soundfile(opened, container, max_seconds)
    return _checked(audio, sample_rate, max_seconds)


def sniff(data: bytes) -> str | None:
    """The container the bytes' magic number names, accepted or not; None when unrecognized."""
    head = data[:12]
    if head[:4] == b"RIFF":
        return "wav" if head[8:12] == b"WAVE" else _name(head[8:12]) or "riff"
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
    """Whether the WAV's data chunk promises more bytes than the file holds.

    libsndfile quietly plays what is there. A size over MAX_AUDIO_BYTES is a streaming writer's
    placeholder (espeak-ng writes 0x7ffff000), not a promise.
    """
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"data":
            return size <= MAX_AUDIO_BYTES and len(data) - (pos + 8) + 16 < size
        pos += 8 + size + (size & 1)
    return False


def _is_opus(data: bytes) -> bool:
    return data[:4] == b"OggS" and b"OpusHead" in data[:512]


def _open_with_libsndfile(data: bytes) -> sf.SoundFile | None:
    """The file opened by libsndfile, or None when libsndfile does not read it (ffmpeg may)."""
    try:
        return sf.SoundFile(io.BytesIO(data))
    except sf.LibsndfileError:
        return None


def _soundfile(f: sf.SoundFile, container: str, max_seconds: float) -> Audio:
    """Mono samples at the file's rate through libsndfile, refusing over-long audio from the header."""
    rate = f.samplerate
    if f.frames > 0 and f.frames / rate > max_seconds:
        raise _too_long(f.frames / rate, max_seconds)
    try:
        # The header can lie (streamed WAV): read at most one frame past the limit.
        frames = f.read(frames=math.floor(max_seconds * rate) + 1, dtype="float32", always_2d=True)
    except sf.LibsndfileError:
        raise _undecodable(container) from None
    return Audio(frames.mean(axis=1, dtype=np.float32), rate)


def _ffmpeg(data: bytes, container: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 samples at `sample_rate`, decoded by ffmpeg for at most max_seconds + 1."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise EngineLoadError("ffmpeg is not installed on this worker; it is needed to decode webm and opus audio.")
    command = [
        binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "pipe",
        "-f", _DEMUXERS[container], "-i", "pipe:0", "-vn", "-t", f"{max_seconds + 1:.3f}",
        "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise VoiceError(
            ErrorCode.UNDECODABLE_AUDIO,
            f"The {container} audio took longer than {FFMPEG_TIMEOUT_S:.0f} s to decode. "
            f"Send a shorter recording or another format ({_ACCEPTED}).",
        ) from None
    if done.returncode != 0:
        raise _undecodable(container)
    usable = len(done.stdout) - len(done.stdout) % 4
    return np.frombuffer(done.stdout[:usable], dtype="<f4").astype(np.float32)


def _checked(audio: Audio, sample_rate: int, max_seconds: float) -> Audio:
    if not np.isfinite(audio.samples).all():
        raise VoiceError(
            ErrorCode.UNDECODABLE_AUDIO,
            "The audio contains invalid samples (NaN or infinity). Send a recording from a microphone or file.",
        )
    if audio.duration_s > max_seconds:
        raise _too_long(None, max_seconds)
    if audio.duration_s < MIN_AUDIO_SECONDS:
        raise VoiceError(
            ErrorCode.EMPTY_AUDIO,
            f"The audio is only {audio.duration_s:.2f} s long; send at least {MIN_AUDIO_SECONDS:g} s of speech.",
        )
    out = resample(audio, sample_rate)
    return Audio(np.clip(out.samples, -1.0, 1.0, dtype=np.float32), sample_rate)


def _too_long(duration_s: float | None, max_seconds: float) -> VoiceError:
    length = f"{duration_s:.1f} s long" if duration_s is not None else f"longer than {max_seconds:g} s"
    return VoiceError(
        ErrorCode.AUDIO_TOO_LONG,
        f"The audio is {length}; the limit is {max_seconds:g} s. Send a shorter recording or split it.",
    )


def _undecodable(container: str) -> VoiceError:
    return VoiceError(
        ErrorCode.UNDECODABLE_AUDIO,
        f"The {container} file could not be decoded: it may be truncated or damaged. "
        f"Send a complete file in one of: {_ACCEPTED}.",
    )
