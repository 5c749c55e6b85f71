"""A scripted chat model: the seam tests and benchmarks use in place of an LLM server.

Never chosen by configuration: only code that builds a `CouncilResponder` with it gets it.

It reports token usage as a real server does, deterministically: a token is a whitespace-separated
word. Input tokens are the words of every message sent; output tokens the words it writes, plus,
for each tool call, the words of its name and JSON arguments.
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

Script = str | AIMessage | BaseException | Callable[[list[BaseMessage]], str | AIMessage]


def tokens(text: str) -> int:
    return len(text.split())


def usage(messages: Sequence[BaseMessage], answer: AIMessage) -> UsageMetadata:
    """The scripted model's token counts for answering `messages` with `answer`."""
    sent = sum(tokens(m.text) for m in messages)
    written = tokens(answer.text) + sum(tokens(f"{c['name']} {json.dumps(c['args'])}") for c in answer.tool_calls)
    return UsageMetadata(input_tokens=sent, output_tokens=written, total_tokens=sent + written)


class Scripted(BaseChatModel):
    """Answers each call from its script, word by word: a reply, an `AIMessage` (which may call
    tools), an exception to raise, or a function of the messages. The last entry repeats.
    `delay` passes before the first word, `pace` between words. `calls` keeps the messages of
    each call, `offered` the names of the tools bound for it."""

    script: list[Any] = Field(default_factory=lambda: ["Noted."])
    delay: float = 0.0
    pace: float = 0.0
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    offered: list[list[str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _next(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> AIMessage:
        self.calls.append(list(messages))
        self.offered.append([t["function"]["name"] for t in tools or []])
        entry = self.script[min(len(self.calls), len(self.script)) - 1]
        if isinstance(entry, BaseException):
            raise entry
        answer = entry(messages) if callable(entry) else entry
        return answer if isinstance(answer, AIMessage) else AIMessage(answer)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        await asyncio.sleep(self.delay)
        answer = self._next(messages, kwargs.get("tools"))
        for word in re.findall(r"\S+\s*", answer.text):
            await asyncio.sleep(self.pace)
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        calls = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
            for i, c in enumerate(answer.tool_calls)
        ]
        last = AIMessageChunk(content="", tool_call_chunks=calls, usage_metadata=usage(messages, answer))
        yield ChatGenerationChunk(message=last)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.delay)
        answer = self._next(messages, kwargs.get("tools"))
        message = AIMessage(answer.text, tool_calls=answer.tool_calls, usage_metadata=usage(messages, answer))
        return ChatResult(generations=[ChatGeneration(message=message)])
