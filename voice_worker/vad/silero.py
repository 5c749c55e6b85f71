"""Silero VAD (its ONNX model ships in the `silero-vad` wheel), and cutting long audio into chunks.

The engine runs silero's "sequence" ONNX model: one onnxruntime call per ~16 s block instead of
a Python loop per 32 ms frame, with the same probabilities. Importing `silero_vad` imports torch
(and sets torch to one thread); no torch code runs here.
"""

from silero_vad import get_speech_timestamps_sequence, load_silero_vad

from shared_schemas import STT_SAMPLE_RATE

from ..audio import Audio, resample
from ..errors import EngineLoadError
from .base import VAD


class SileroVAD(VAD):
    """Speech spans in 16 kHz mono audio.

    `max_speech_s` makes silero itself split a long stretch of speech at its quietest pause, so
    that `split_spans` (30 s chunks, padded) rarely has to cut inside a word.
    """

    name = "silero"

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        min_speech_ms: int = 250,
        min_silence_ms: int = 300,
        speech_pad_ms: int = 30,
        max_speech_s: float = 25.0,
    ):
        try:
            self._model = load_silero_vad(sequence=True)
        except (OSError, RuntimeError) as exc:  # a missing or unreadable model file in the wheel
            raise EngineLoadError(f"The silero-vad model failed to load: {exc}") from exc
        self._options = {
            "threshold": threshold,
            "min_speech_duration_ms": min_speech_ms,
            "min_silence_duration_ms": min_silence_ms,
            "speech_pad_ms": speech_pad_ms,
            "max_speech_duration_s": max_speech_s,
        }

    def speech_spans(self, audio: Audio) -> list[tuple[float, float]]:
        samples = resample(audio, STT_SAMPLE_RATE).samples
        if len(samples) == 0:
            return []
        found = get_speech_timestamps_sequence(samples, self._model, sampling_rate=STT_SAMPLE_RATE, **self._options)
        return [(round(s["start"] / STT_SAMPLE_RATE, 3), round(s["end"] / STT_SAMPLE_RATE, 3)) for s in found]
