"""Speech to text: the interface. Each engine is a module of its own (`whisper`, `parakeet`), imported
when it is built (voice_worker/engines.py), so a worker loads only the packages of the engine it runs."""

from .base import STT, STTCapabilities

__all__ = ["STT", "STTCapabilities"]
