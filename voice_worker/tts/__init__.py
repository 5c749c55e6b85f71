"""Text to speech: the interface and its engines. Importing this package never imports torch."""

from .base import TTS, TTSCapabilities
from .espeak import EspeakTTS
from .piper import PiperTTS, default_model_path

__all__ = ["TTS", "EspeakTTS", "PiperTTS", "TTSCapabilities", "default_model_path"]
