"""A scripted chat model: the seam tests and benchmarks use in place of an LLM server.

Never chosen by configuration: only code that builds a `CouncilResponder` with it gets it.
"""

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

Script = str | BaseException | Callable[[list[BaseMessage]], str]


class Scripted(BaseChatModel):
    """Answers each call from its script, word by word: a reply, an exception to raise, or a
    function of the messages. The last entry repeats. `delay` passes before the first word,
    `pace` between words."""

    script: list[Any] = Field(default_factory=lambda: ["Noted."])
    delay: float = 0.0
    pace: float = 0.0
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _next(self, messages: list[BaseMessage]) -> str:
        self.calls.append(list(messages))
        entry = self.script[min(len(self.calls), len(self.script)) - 1]
        if isinstance(entry, BaseException):
            raise entry
        return entry(messages) if callable(entry) else entry

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        await asyncio.sleep(self.delay)
        for word in re.findall(r"\S+\s*", self._next(messages)):
            await asyncio.sleep(self.pace)
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._next(messages)))])
