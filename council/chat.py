"""Talking to a chat model: its answer as text pieces while it streams, or whole."""

from collections.abc import AsyncIterator, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage


async def pieces(model: BaseChatModel, messages: Sequence[BaseMessage]) -> AsyncIterator[str]:
    """The text of the model's answer, piece by piece as it is written (reasoning left out)."""
    async for chunk in model.astream(list(messages)):
        if text := chunk.text:
            yield text


async def complete(model: BaseChatModel, messages: Sequence[BaseMessage]) -> str:
    return "".join([piece async for piece in pieces(model, messages)]).strip()
