"""The speech-to-text interface every STT engine implements."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from shared_schemas import Transcript

from ..audio import Audio


@dataclass(frozen=True)
class STTCapabilities:
    word_timestamps: bool
    languages: tuple[str, ...]


class STT(ABC):
    name: str
    capabilities: STTCapabilities

    @abstractmethod
    def transcribe(self, audio: Audio, language: str = "en", offset_s: float = 0.0) -> Transcript:
        """Transcribe 16 kHz mono audio; segment and word times are shifted by `offset_s`."""
