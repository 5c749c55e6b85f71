"""eSpeak NG: robotic but instant, and five clearly different voices, one per council member.

Each call runs the `espeak-ng` binary once, with the text on stdin (so no text is ever read as
an option), and parses the WAV it writes to stdout.
"""

import io
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from shared_schemas import ErrorCode

from ..audio import Audio
from ..errors import EngineLoadError, VoiceError
from .base import TTS, TTSCapabilities

SAMPLE_RATE = 22_050
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class EspeakVoice:
    espeak: str  # espeak-ng voice and variant, "-v"
    pitch: int  # 0-99, "-p"
    speed: int  # words per minute, "-s"
    description: str


# Pitch and speed chosen so the voices' median pitch lies about a third apart, lowest to highest:
# leon ~75 Hz, max ~95, angus ~120, ada ~170, iris ~220 (en-gb+f3 speaks at ~105 Hz by default).
VOICES: Mapping[str, EspeakVoice] = {
    "max": EspeakVoice("en-us+m3", 35, 170, "US English, low male voice, even pace"),
    "ada": EspeakVoice("en-gb+f3", 99, 165, "British English, female voice"),
    "iris": EspeakVoice("en-us+f4", 70, 185, "US English, high female voice, brisk"),
    "angus": EspeakVoice("en-gb-scotland+m7", 65, 150, "Scottish English, male voice, slow"),
    "leon": EspeakVoice("en-029+m1", 10, 190, "Caribbean English, deep male voice, quick"),
}


class EspeakTTS(TTS):
    """The espeak-ng binary, one process per sentence (15-25 ms each)."""

    name = "espeak"
    capabilities = TTSCapabilities(sample_rate=SAMPLE_RATE)

    def __init__(self, binary: str = "espeak-ng"):
        path = shutil.which(binary)
        if path is None:
            raise EngineLoadError(f"The {binary} program is not installed (Debian: apt-get install espeak-ng).")
        self._binary = path

    @property
    def voices(self) -> Mapping[str, str]:
        return {name: voice.description for name, voice in VOICES.items()}

    def synthesize(self, text: str, voice: str) -> Audio:
        spec = VOICES.get(voice)
        if spec is None:
            raise VoiceError(ErrorCode.UNKNOWN_VOICE, f"Unknown voice {voice!r}. Voices: {', '.join(VOICES)}.")
        if not text.strip():
            return Audio(np.zeros(0, dtype=np.float32), SAMPLE_RATE)
        command = [self._binary, "--stdout", "-v", spec.espeak, "-p", str(spec.pitch), "-s", str(spec.speed)]
        try:
            done = subprocess.run(
                command, input=text.encode("utf-8"), capture_output=True, timeout=TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise VoiceError(ErrorCode.ENGINE_FAILED, f"espeak-ng took over {TIMEOUT_S:.0f} s. Try again.") from None
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip()[:200]
            raise VoiceError(ErrorCode.ENGINE_FAILED, f"espeak-ng failed ({detail or done.returncode}). Try again.")
        try:
            samples, rate = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
        except sf.LibsndfileError as exc:
            raise VoiceError(ErrorCode.ENGINE_FAILED, f"espeak-ng wrote unreadable audio ({exc}). Try again.") from exc
        return Audio(np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32)), rate)
