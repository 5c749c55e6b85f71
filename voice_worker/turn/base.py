"""The end-of-turn interface: one capability, one abstract class, like STT, TTS and VAD.

Threads: every listener thread asks the one engine about its own stream, so `probability` may be
called from several threads at once and must keep no state between calls. Smart Turn does not:
its features are computed from the samples alone, and onnxruntime's `InferenceSession.run` may be
called from several threads at once.
"""

from abc import ABC, abstractmethod

import numpy as np


class TurnModel(ABC):
    name: str

    @abstractmethod
    def probability(self, samples: np.ndarray) -> float:
        """How likely the speaker has finished their turn, given the turn so far (16 kHz mono
        float32, ending with the silence they are in now)."""

    def close(self) -> None:
        """Let go of what the engine holds (a model's memory, its threads). The worker calls it once
        at shutdown, after its jobs and listeners stopped; nothing is called after it. By default
        nothing."""
        return None  # nothing to let go of
