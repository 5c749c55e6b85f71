"""The end-of-turn interface: one capability, one abstract class, like STT, TTS and VAD."""

from abc import ABC, abstractmethod

import numpy as np


class TurnModel(ABC):
    name: str

    @abstractmethod
    def probability(self, samples: np.ndarray) -> float:
        """How likely the speaker has finished their turn, given the turn so far (16 kHz mono
        float32, ending with the silence they are in now)."""
