"""Prompts already read, kept so that the next prompt that begins the same way is not read again.

A member's prompt is its persona, the conversation so far and the new question, in the model's
chat template: the next turn's prompt begins with this turn's whole prompt, and every prompt of a
member begins with its persona. Reading (prefilling) a prompt costs about a decode step per few
tokens on a CPU: measured on the 2-core machine at load 5 (SmolLM2-135M, one thread), the first
token came 1.0 s after a 99-token prompt and 3.6-4.2 s after one of 400-700 tokens (a conversation
of 5-10 turns). So the key and value states of recent prompts are kept (bounded by their tokens
in all: SmolLM2-135M holds 46 KB a token), and a prompt that begins like one of them is read from
where they part.
"""

from collections import OrderedDict
from collections.abc import Sequence

import torch

# One layer's (keys, values), each [1, heads, tokens, head dim].
States = list[tuple[torch.Tensor, torch.Tensor]]


class Prefixes:
    def __init__(self, max_tokens: int, min_shared: int = 16) -> None:
        self.max_tokens = max_tokens  # 0: keep nothing
        self.min_shared = min_shared  # a shorter shared beginning is not worth a pass of its own
        self._kept: OrderedDict[tuple[int, ...], States] = OrderedDict()
        self._tokens = 0

    def find(self, prompt: Sequence[int]) -> tuple[int, States] | None:
        """The longest kept beginning of `prompt` (leaving at least its last token to read), and its
        states cut to it; None when none is long enough."""
        best, found = 0, None
        for ids in self._kept:
            shared = _shared(ids, prompt, len(prompt) - 1)
            if shared > best:
                best, found = shared, ids
        if found is None or best < self.min_shared:
            return None
        self._kept.move_to_end(found)
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in self._kept[found]]

    def keep(self, prompt: Sequence[int], states: States) -> None:
        """Keep a prompt's states (the oldest go when the tokens kept would pass `max_tokens`)."""
        ids = tuple(prompt)
        if not self.max_tokens or len(ids) > self.max_tokens:
            return
        if ids in self._kept:
            self._kept.move_to_end(ids)
            return
        self._kept[ids] = [(k.clone(), v.clone()) for k, v in states]
        self._tokens += len(ids)
        while self._tokens > self.max_tokens:
            old, _ = self._kept.popitem(last=False)
            self._tokens -= len(old)


def _shared(a: Sequence[int], b: Sequence[int], most: int) -> int:
    n = min(len(a), len(b), most)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
