"""`POST /v1/chat/completions`: the council behind OpenAI's chat completion API.

- `model`: `council` (the whole deliberation) or `council-fast`. The responder takes no route
  from its caller, so `council-fast` cannot force the fast path: it asks for no critique round
  (where the responder takes `critique`, as the council does), and the router decides the route
  as for any turn (a greeting or a short factual question goes to the fast member). The route
  taken is the `routed` step in `council_steps`.
- `messages`: the last one must be the user's: it is the question. Earlier messages (system,
  developer, user, assistant) are not sent to the council: its members have their own personas,
  and a conversation's memory is the council's own (see `council_session`).
- `stream`: server-sent `chat.completion.chunk`s: the role first, then the answer's pieces as the
  chair (or the fast member) writes them, a chunk with `finish_reason: "stop"`, with
  `stream_options.include_usage` a last chunk with `usage` and no choices, then `data: [DONE]`.
  A failure after the stream began is an `{"error": ...}` event (and no [DONE]).
- Extensions, which OpenAI's clients ignore: the answer carries `council_steps` (deliberation.py:
  the router's decision, each member starting, dropping out, critiquing, its whole answer); a
  stream's chunks carry them as they happen, in chunks whose `delta` is empty. The request may
  name a `council_session` (letters, digits, `_.-`): turns with the same one, by the same user,
  share the council's memory. Without it each request is a new session, remembering nothing.
- `usage`: the tokens the turn's model calls used, from the ledger (what the LLM servers
  reported, or the ledger's estimate where one reported nothing); 0 for a responder without an
  LLM (echo).
- Accepted and not used: temperature, top_p, max_tokens and the other sampling settings (each
  member has its own model and limits), `user` (the token's user pays), `tool_choice` "none" or
  "auto" with no tools. Refused: `n` over 1, `tools` and `functions` (the council calls only its
  own tools), a `response_format` other than text, an `audio` modality (speak the answer with
  /v1/audio/speech), and any other field.

Every model call is metered against the token's user, and a frozen or spent user is refused
(429 `budget_exceeded`) before the council starts. When none of the council's LLM servers answers
(the app's cached look at them, as /health gives it), the request is refused with 503
`llm_unavailable` and Retry-After before anything starts, streamed or not.
"""

import hashlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from council import LLMUnavailable, Reply, Step
from queues import REDIS_DOWN
from shared_schemas import Refusal

from ..auth import user_of
from ..chat import DEFAULT_VOICE
from ..errors import translate
from ..services import Services, services
from . import sse
from .bodies import json_body
from .deliberation import Deliberation
from .errors import answered, invalid, openai_error
from .models import CHAT, unknown_model

MAX_BODY_BYTES: Final = 1024 * 1024
IGNORED: Final = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "metadata",
        "store",
        "service_tier",
        "reasoning_effort",
        "verbosity",
        "parallel_tool_calls",
        "tool_choice",
        "prompt_cache_key",
        "safety_identifier",
    }
)


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: not read

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # checked against IGNORED: see `refuse_unknown`

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    tools: list[dict[str, Any]] | None = None
    functions: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    council_session: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    def refuse_unknown(self) -> None:
        extra = sorted(set(self.model_extra or {}) - IGNORED)
        if extra:
            raise invalid(f"Unrecognized request argument supplied: {', '.join(extra)}.", extra[0])
        if self.model not in CHAT:
            raise unknown_model(self.model, "chat", list(CHAT))
        if self.n != 1:
            raise invalid("The council gives one answer: n must be 1.", "n")
        if self.tools or self.functions:
            raise invalid("The council calls only its own tools: send no tools or functions.", "tools")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise invalid("The council answers in text: response_format must be {'type': 'text'}.", "response_format")
        if self.modalities and set(self.modalities) != {"text"}:
            raise invalid("The council answers in text; speak it with POST /v1/audio/speech.", "modalities")

    def question(self) -> str:
        """The last message, the user's, as text."""
        last, at = self.messages[-1], f"messages[{len(self.messages) - 1}]"
        if last.role != "user":
            raise invalid(f"The last message is the question: it must be the user's, not the {last.role}'s.", at)
        content = last.content
        if isinstance(content, list):
            if any(part.get("type") != "text" for part in content):
                raise invalid("The council reads text: send only parts of type 'text'.", f"{at}.content")
            content = "\n".join(str(part.get("text", "")) for part in content)
        if not content or not content.strip():
            raise invalid("The question is empty.", f"{at}.content")
        return content.strip()


async def parse(request: Request) -> ChatRequest:
    chat = await json_body(request, ChatRequest, MAX_BODY_BYTES, '{"model", "messages", ...}')
    chat.refuse_unknown()
    return chat


def session_of(user: str, chat: ChatRequest) -> str:
    """A new session, or the user's own `council_session` (another user's of that name is theirs)."""
    if chat.council_session is None:
        return f"v1-{uuid.uuid4().hex}"
    return f"v1-{hashlib.sha256(user.encode()).hexdigest()[:16]}-{chat.council_session}"


class Completion:
    """The answer's OpenAI objects: the completion, or the chunks of a stream."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.created = int(time.time())

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "system_fingerprint": None}

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._head("chat.completion.chunk"), "choices": [choice], **more}

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": usage}

    def whole(self, answer: Deliberation, usage: dict[str, int]) -> dict[str, Any]:
        message = {"role": "assistant", "content": answer.text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return {**self._head("chat.completion"), "choices": [choice], "usage": usage, "council_steps": answer.steps}


async def usage_of(s: Services, turn_id: str) -> dict[str, int]:
    """The turn's tokens as the ledger has them (its model calls settle before the turn ends)."""
    counted = (await s.meter.budgets.ledger.usage("turn", turn_id)).quantities
    prompt, completion = counted.get("input_tokens", 0), counted.get("output_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _close(items: AsyncIterator[Reply | Step]) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


async def streamed(
    s: Services, chat: ChatRequest, out: Completion, first: Reply | Step | None, items: AsyncIterator[Reply | Step]
) -> AsyncIterator[bytes]:
    """The answer's chunks as server-sent events; a failure once they began is an error event."""
    answer = Deliberation()
    usage_field = {"usage": None} if chat.stream_options and chat.stream_options.include_usage else {}
    try:
        yield sse.event(out.chunk({"role": "assistant", "content": ""}, **usage_field))
        item = first
        while item is not None:
            text, steps = answer.take(item)
            if steps:
                yield sse.event(out.chunk({}, council_steps=steps, **usage_field))
            if text:
                yield sse.event(out.chunk({"content": text}, **usage_field))
            item = await anext(items, None)
    except (Refusal, *REDIS_DOWN) as exc:  # a budget, the council, Redis away: said as an error event
        refusal = translate(exc)
        assert refusal is not None
        yield sse.event(openai_error(refusal).body())
        return
    finally:
        await _close(items)
    if steps := answer.finish():
        yield sse.event(out.chunk({}, council_steps=steps, **usage_field))
    yield sse.event(out.chunk({}, "stop", **usage_field))
    if usage_field:
        yield sse.event(out.usage_chunk(await usage_of(s, out.id)))
    yield sse.DONE


@answered
async def create_completion(request: Request) -> Response:
    s = services(request)
    chat = await parse(request)
    question = chat.question()
    user = user_of(request)
    # The council meters its own calls; this refuses a frozen or spent user whatever answers.
    await s.meter.budgets.check_user(user)
    if (down := await s.llm_down()) is not None:
        # 503 before any stream starts: what clients retry or report, not an error mid-stream.
        raise LLMUnavailable(down)
    out = Completion(chat.model)
    options: dict[str, Any] = {"hear_members": False, "user": user}
    accepted = inspect.signature(s.responder.answer).parameters
    if "hear_first" in accepted:
        options["hear_first"] = False  # the spoken pieces are the completion: the chair's only
    if chat.model == "council-fast" and "critique" in accepted:
        options["critique"] = False
    items = s.responder.answer(session_of(user, chat), out.id, question, DEFAULT_VOICE, **options)
    try:
        # The first step before any answer: a refused budget or a missing LLM is still a status.
        first = await anext(items, None)
        if chat.stream:
            return sse.response(streamed(s, chat, out, first, items))
        answer = Deliberation()
        while first is not None:
            answer.take(first)
            first = await anext(items, None)
        answer.finish()
    except BaseException:
        await _close(items)
        raise
    return JSONResponse(out.whole(answer, await usage_of(s, out.id)))


routes = [Route("/v1/chat/completions", create_completion, methods=["POST"])]
