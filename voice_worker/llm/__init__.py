"""Language models: the interface. Each engine is a module of its own (`hf`: transformers),
imported when it is built (voice_worker/engines.py), so a worker that does not serve the `llm`
queue never imports transformers."""

from .base import LLM, FinishReason, Generated, LLMCapabilities, Request
from .stream import TextStream

__all__ = ["LLM", "FinishReason", "Generated", "LLMCapabilities", "Request", "TextStream"]
