"""The voice-activity-detection interface: speech spans in a file, and speech probability live.

Threads: `speech_spans` (the job loop) and `stream` (each listener) may be called from several
threads at once; a `VADStream` belongs to its one listener thread and keeps that stream's state,
so it is never shared. Silero keeps no state in the engine: its onnxruntime sessions are shared,
and `InferenceSession.run` may be called from several threads at once.
"""

from abc import ABC, abstractmethod

import numpy as np

from ..audio import Audio


class VADStream(ABC):
    """One live audio stream's detector: it keeps the state that carries from window to window."""

    window: int  # samples of 16 kHz audio per call

    @abstractmethod
    def probability(self, window: np.ndarray) -> float:
        """How likely this window (`window` float32 samples, following the last) holds speech."""


class VAD(ABC):
    name: str

    @abstractmethod
    def speech_spans(self, audio: Audio) -> list[tuple[float, float]]:
        """Start and end times, in seconds, of the stretches of speech in 16 kHz mono audio."""

    @abstractmethod
    def stream(self) -> VADStream:
        """A detector for one live stream (many may run at once, from several threads)."""

    def close(self) -> None:
        """Let go of what the engine holds (a model's memory, its threads). The worker calls it once
        at shutdown, after its jobs and listeners stopped; nothing is called after it. By default
        nothing."""
        return None  # nothing to let go of
