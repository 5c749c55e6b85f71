"""The text-to-speech interface every TTS engine implements.

Threads: only the worker's job loop synthesizes (listeners never speak), so an engine is used by
one thread at a time and need not be safe for more; a generator from `synthesize_stream` is
consumed on that thread before the next call. (eSpeak runs a process per call; Piper guards
espeak-ng's global voice with its own lock and runs onnxruntime; Coqui's torch models promise
nothing, and need not.) A caller that speaks from several threads must add a lock.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..audio import Audio


@dataclass(frozen=True)
class TTSCapabilities:
    sample_rate: int
    # Whether `synthesize_stream` yields a sentence in pieces as they are made (XTTS), so the first
    # can be played before the sentence is done; engines that do not stream yield it whole.
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

    def synthesize_stream(self, text: str, voice: str) -> Iterator[Audio]:
        """Speak `text` in consecutive pieces as they are made; joined, they are the whole sentence.

        An engine whose `capabilities.streaming` is true overrides this; the default yields the
        sentence at once.
        """
        yield self.synthesize(text, voice)

    def close(self) -> None:
        """Let go of what the engine holds (a model's memory, its threads). The worker calls it once
        at shutdown, after its jobs and listeners stopped; nothing is called after it. By default
        nothing."""
        return None  # nothing to let go of
