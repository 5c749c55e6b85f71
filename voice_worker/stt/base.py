"""The speech-to-text interface every STT engine implements.

Threads: one engine instance serves the whole worker. The job loop calls `transcribe`, `stream`,
`transcribe_many` and `recognize` (one call at a time), while each listener thread
(`voice_worker.listening`, up to `WORKER_LISTENERS`) calls `recognize` for its own stream: so every
method may run in several threads at once, and an engine must give each call the result it would
give alone. An engine whose library is not safe so guards it itself, around the shortest stretch
that needs it (Parakeet: NeMo's `transcribe` switches the model's modes and restores them, so one
lock holds each forward pass). Whisper needs none: faster-whisper keeps no state between calls,
and CTranslate2's methods may be called from several threads (they queue for its `num_workers`).
tests/voice_worker/test_threads.py runs both at once on the real engines.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from shared_schemas import Segment, Transcript

from ..audio import Audio


@dataclass(frozen=True)
class STTCapabilities:
    word_timestamps: bool
    languages: tuple[str, ...]
    # Recognizes several clips in one forward pass (`transcribe_many`): the worker then takes
    # several waiting batch-queue files at once.
    batches: bool = False


class STT(ABC):
    name: str
    capabilities: STTCapabilities

    @abstractmethod
    def transcribe(self, audio: Audio, language: str = "en", offset_s: float = 0.0) -> Transcript:
        """Transcribe 16 kHz mono audio; segment and word times are shifted by `offset_s`."""

    def stream(self, audio: Audio, language: str = "en", offset_s: float = 0.0) -> Iterator[Segment]:
        """The segments of `transcribe`, each as soon as the engine has decoded it (a client
        streaming a transcription sees them as they come). By default, all once it returns."""
        yield from self.transcribe(audio, language, offset_s).segments

    def recognize(self, audio: Audio, language: str = "en") -> Transcript:
        """Recognize a short live clip (a spoken turn, or the part of one heard so far) as fast as
        the engine can; word times may be left out. By default, `transcribe`."""
        return self.transcribe(audio, language)

    def transcribe_many(
        self, audios: Sequence[Audio], language: str = "en", offsets: Sequence[float] | None = None
    ) -> list[Transcript]:
        """One transcript per clip; engines that batch (`capabilities.batches`) do it in one pass."""
        offsets = offsets or [0.0] * len(audios)
        return [self.transcribe(audio, language, offset) for audio, offset in zip(audios, offsets, strict=True)]

    def close(self) -> None:
        """Let go of what the engine holds (a model's memory, its threads). The worker calls it once
        at shutdown, after its jobs and listeners stopped; nothing is called after it. By default
        nothing."""
        return None  # nothing to let go of
