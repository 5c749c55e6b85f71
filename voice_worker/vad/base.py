"""The voice-activity-detection interface."""

from abc import ABC, abstractmethod

from ..audio import Audio


class VAD(ABC):
    name: str

    @abstractmethod
    def speech_spans(self, audio: Audio) -> list[tuple[float, float]]:
        """Start and end times, in seconds, of the stretches of speech in 16 kHz mono audio."""
