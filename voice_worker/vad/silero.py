"""Silero VAD (its ONNX model ships in the `silero-vad` wheel), and cutting long audio into chunks.

The engine runs silero's "sequence" ONNX model: one onnxruntime call per ~16 s block instead of
a Python loop per 32 ms frame, with the same probabilities. Importing `silero_vad` imports torch
(and sets torch to one thread); no torch code runs here.
"""

import math
from collections.abc import Iterable

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


def split_spans(
    spans: Iterable[tuple[float, float]],
    max_chunk_s: float = 30.0,
    pad_s: float = 0.2,
    *,
    total_s: float,
) -> list[tuple[float, float]]:
    """Chunks of at most `max_chunk_s` covering every span, padded by `pad_s` within [0, total_s].

    Neighbouring spans share a chunk while it stays short enough (the pause between them goes
    with it); a span longer than `max_chunk_s` is cut into equal pieces.
    """
    if max_chunk_s <= 0:
        raise ValueError("max_chunk_s must be positive")
    clamped = ((max(0.0, start - pad_s), min(total_s, end + pad_s)) for start, end in spans)
    padded = sorted((start, end) for start, end in clamped if end > start)
    chunks: list[tuple[float, float]] = []
    for start, end in padded:
        if chunks and start <= chunks[-1][1]:  # overlaps the previous chunk once padded
            start = chunks[-1][1]
            if end <= start:
                continue
        if chunks and end - chunks[-1][0] <= max_chunk_s:
            chunks[-1] = (chunks[-1][0], end)
            continue
        pieces = math.ceil((end - start) / max_chunk_s - 1e-9)
        step = (end - start) / pieces
        chunks.extend((start + i * step, start + (i + 1) * step) for i in range(pieces))
    return chunks
