"""The text-to-speech interface every TTS engine implements."""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from ..audio import Audio


@dataclass(frozen=True)
class TTSCapabilities:
    sample_rate: int
    streaming: bool = False


class TTS(ABC):
    name: str
    capabilities: TTSCapabilities

    @property
    @abstractmethod
    def voices(self) -> Mapping[str, str]:
        """Voice names this engine speaks, each with a short description."""

    @abstractmethod
    def synthesize(self, text: str, voice: str) -> Audio:
        """Speak one sentence (or a short paragraph) in `voice`; float32 mono samples."""
