"""Text to speech: the interface and espeak-ng, the engine every worker has. The others (`piper`,
`coqui`) are modules of their own, imported when they are built (voice_worker/engines.py), so a
worker loads only the packages of the engines it runs. Importing this package never imports torch."""

from .base import TTS, TTSCapabilities
from .espeak import EspeakTTS

__all__ = ["TTS", "EspeakTTS", "TTSCapabilities"]
