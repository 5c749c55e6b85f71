"""The benchmark's audio: the speech clip it speaks with (given, carried or made with flite), as
16 kHz PCM16, and the longer clips and WAV files made from it."""

import io
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

RATE = 16_000
# What bench/gpu/wheels.sh made: wheels, redis-server, speech.wav, the turn model.
CARRIED = Path(__file__).resolve().parents[2] / ".whl"
SPEECH_TEXT = "please summarize the main risks of this plan for me"  # about 3 s in flite's slt voice


def speech(given: str | None, folder: Path) -> tuple[np.ndarray | None, str]:
    """16 kHz int16 speech, trimmed to its voiced part: a WAV given or carried, or one made with flite."""
    path = Path(given) if given else CARRIED / "speech.wav"
    if not path.is_file() and shutil.which("flite"):
        path = folder / "speech.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", SPEECH_TEXT, "-o", str(path)], check=True)
    if not path.is_file():
        return None, "no speech clip (give --speech WAV, or carry .whl/speech.wav, or install flite)"
    with wave.open(str(path)) as w:
        if w.getframerate() != RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"{path}: want 16 kHz mono PCM16")
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    voiced = np.nonzero(np.abs(samples) > 300)[0]
    return samples[voiced[0] : voiced[-1] + 1].copy(), str(path)


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def clip_of(voice: np.ndarray | None, seconds: float, seed: int) -> np.ndarray:
    """`seconds` of the speech clip repeated with short pauses (or quiet noise, without speech)."""
    n = int(seconds * RATE)
    if voice is None:
        return (np.random.default_rng(seed).standard_normal(n) * 300).astype(np.int16)
    gap = np.zeros(int(0.25 * RATE), dtype=np.int16)
    start = seed * 1234 % len(voice)
    loop = np.concatenate([voice[start:], gap, voice, gap])
    while len(loop) < n:
        loop = np.concatenate([loop, voice, gap])
    return loop[:n]
