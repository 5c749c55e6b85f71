"""Talking to a chat model: its answer as text pieces while it streams, or whole.

`on_chunk` sees every chunk as it comes (the ledger's meter adds them up: token usage and tool
calls arrive in chunks too, usually the last)."""

from collections.abc import AsyncGenerator, Callable, Sequence

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable

ChatModel = Runnable[LanguageModelInput, BaseMessage]  # a chat model, or one with tools bound
OnChunk = Callable[[AIMessageChunk], None] | None


async def pieces(
    model: ChatModel, messages: Sequence[BaseMessage], on_chunk: OnChunk = None
) -> AsyncGenerator[str, None]:
    """The text of the model's answer, piece by piece as it is written (reasoning left out)."""
    async for chunk in model.astream(list(messages)):
        if on_chunk is not None and isinstance(chunk, AIMessageChunk):
            on_chunk(chunk)
        if text := chunk.text:
            yield text


async def complete(model: ChatModel, messages: Sequence[BaseMessage], on_chunk: OnChunk = None) -> str:
    return "".join([piece async for piece in pieces(model, messages, on_chunk)]).strip()
