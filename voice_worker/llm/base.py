"""The interface every language-model engine implements.

Threads: an engine instance is used by one thread at a time. The worker calls `generate_many`
from its job loop only (listeners never touch it), and an engine may keep state between calls
(a cache, a random generator) without locks. `on_piece` and `stopped` are called on the calling
thread, between two forward passes, never concurrently; they may do I/O (publish an event, ask
Redis), and what they cost is added to every sequence's time per token.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from shared_schemas import ChatMessage

# Why a sequence ended: the model's end of message or a stop string; `max_tokens`; asked to stop.
FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class LLMCapabilities:
    # Decodes several requests in one forward pass per token (`generate_many`): the worker then
    # takes several waiting generation jobs at once.
    batches: bool
    # The most requests one `generate_many` call takes.
    max_batch: int
    # Where it runs ("cpu", "cuda", "cuda:1"): a GPU's time is metered as wall time.
    device: str
    # The most tokens a prompt and its answer make together: an answer stops there (`length`).
    context_tokens: int
    # Takes new requests into a batch already decoding, between two tokens (`generate_many`'s `join`).
    joins: bool = False


@dataclass(frozen=True)
class Request:
    """One conversation to continue with the next assistant message."""

    messages: Sequence[ChatMessage]
    max_tokens: int = 256
    # 0 or None: greedy; above: sampling at this temperature.
    temperature: float | None = None
    # The answer ends before the first of these (which is left out); the model's end of message
    # always ends it.
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generated:
    """One sequence's outcome. `text` is exactly the pieces given to `on_piece`, joined.
    `output_tokens` counts every token the model produced for it, its end-of-message token too."""

    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: FinishReason
    # From the call's start to this sequence's first token (the prompt's forward pass included).
    first_token_ms: float
    # The decoding rate after the first token (0 with one token).
    tokens_per_s: float


def _no_piece(index: int, piece: str) -> None:
    return None


def _never(active: Sequence[int]) -> Collection[int]:
    return ()


def _nobody(room: int) -> Sequence[Request]:
    return ()


class LLM(ABC):
    name: str  # the engine, e.g. "transformers"
    model: str  # the model it serves, as jobs name it ("builtin", or a name under MODEL_DIR/llm)
    capabilities: LLMCapabilities

    @abstractmethod
    def prompt_tokens(self, request: Request) -> int:
        """How many tokens the request's prompt is (its messages in the model's chat template)."""

    @abstractmethod
    def generate_many(
        self,
        requests: Sequence[Request],
        on_piece: Callable[[int, str], None] = _no_piece,
        stopped: Callable[[Sequence[int]], Collection[int]] = _never,
        join: Callable[[int], Sequence[Request]] = _nobody,
    ) -> list[Generated]:
        """Continue each conversation, decoding them together; one `Generated` per request, in order.

        `on_piece(i, text)` gets each piece of request i's answer as soon as it is decoded (whole
        characters only: a character split across tokens waits for its last token). Between two
        tokens the engine asks `stopped(indices of the requests still running)`; those it names end
        there, `cancelled`, with what they wrote so far. Each request ends on its own (end of
        message, stop string, `max_tokens`, cancel); the others go on. At most
        `capabilities.max_batch` requests (ValueError beyond, and for a prompt that leaves no room
        in `capabilities.context_tokens`: check with `prompt_tokens` first).

        With `capabilities.joins`, between two tokens, while fewer than `max_batch` requests run,
        the engine asks `join(room)` for up to `room` more (it may give none): each is read (its
        prompt's forward pass), gets its first token at once and decodes alongside the others from
        the next step, with its own cache rows, positions and stop; the requests it gives are
        numbered on from the last (for `on_piece`, `stopped` and the results, which hold them too).
        A joined request's `first_token_ms` counts from when it joined.
        """

    def generate(
        self,
        request: Request,
        on_piece: Callable[[str], None] | None = None,
        stopped: Callable[[], bool] | None = None,
    ) -> Generated:
        """One request alone."""
        piece = (lambda _i, text: on_piece(text)) if on_piece is not None else _no_piece
        stop = (lambda active: active if stopped() else ()) if stopped is not None else _never
        return self.generate_many([request], piece, stop)[0]

    def close(self) -> None:
        """Let go of what the engine holds (a model's memory, its threads). The worker calls it once
        at shutdown, after its jobs stopped; nothing is called after it. By default nothing."""
        return None  # nothing to let go of
