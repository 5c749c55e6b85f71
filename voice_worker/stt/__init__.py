"""Speech to text: the interface and its engines."""

from .base import STT, STTCapabilities
from .whisper import WhisperSTT, default_model_dir

__all__ = ["STT", "STTCapabilities", "WhisperSTT", "default_model_dir"]
