"""Voice activity detection: the interface, silero, and cutting long audio into chunks.

Importing this package imports torch (silero-vad does at import).
"""

from .base import VAD
from .silero import SileroVAD, split_spans

__all__ = ["VAD", "SileroVAD", "split_spans"]
