"""Voice activity detection: the interface, and cutting long audio into chunks.

The silero engine lives in `voice_worker.vad.silero`; it is not imported here because silero-vad
imports torch, which a worker without a VAD need not load.
"""

from .base import VAD
from .spans import split_spans

__all__ = ["VAD", "split_spans"]
