"""Silero VAD (its ONNX models ship in the `silero-vad` wheel), for files and for live streams.

Files: silero's "sequence" ONNX model, one onnxruntime call per ~16 s block instead of a Python
loop per 32 ms frame, with the same probabilities. Live streams: silero's stateful model, one call
per 32 ms window (0.08 ms on this CPU), its recurrent state and 64 samples of context kept per
stream; one onnxruntime session serves every stream (its `run` is thread-safe). Importing
`silero_vad` imports torch (and sets torch to one thread); no torch code runs here.
"""

from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime
from silero_vad import get_speech_timestamps_sequence, load_silero_vad

from shared_schemas import STT_SAMPLE_RATE

from .. import modelfiles
from ..audio import Audio, resample
from ..errors import EngineLoadError
from .base import VAD, VADStream

WINDOW = 512  # samples at 16 kHz: what silero's stateful model takes
CONTEXT = 64  # samples of the window before, which it also reads


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
        data = resources.files("silero_vad.data")
        modelfiles.verify(modelfiles.SILERO, Path(str(data)))  # the two files loaded below
        try:
            self._model = load_silero_vad(sequence=True)
            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = options.intra_op_num_threads = 1
            live = data.joinpath("silero_vad.onnx")
            self._live = onnxruntime.InferenceSession(str(live), sess_options=options)
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

    def stream(self) -> "SileroStream":
        return SileroStream(self._live)


class SileroStream(VADStream):
    window = WINDOW

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)
        self._rate = np.array(STT_SAMPLE_RATE, dtype=np.int64)

    def probability(self, window: np.ndarray) -> float:
        if len(window) != WINDOW:
            raise ValueError(f"silero takes {WINDOW} samples at a time, not {len(window)}")
        x = np.concatenate([self._context, window.astype(np.float32, copy=False)[None, :]], axis=1)
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._rate})
        self._context = x[:, -CONTEXT:]
        return float(out[0, 0])
