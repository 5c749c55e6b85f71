"""One sequence's tokens as text pieces, as they are decoded: whole characters, stop strings cut.

Tokenizers split characters across tokens (a byte-level BPE spends several tokens on an emoji),
and decoding a token alone can differ from decoding it in context (a leading space). So the text
so far is decoded over a short window of recent tokens and compared with the same window without
the newest ones (the method of Hugging Face's text-generation-inference): a window that ends in
U+FFFD (a character not finished yet) waits for the next token.

Stop strings: text that might begin one is held back until it cannot (or until the sequence ends
another way and `flush` lets it go); a stop string found ends the text before it.
"""

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"


class TextStream:
    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = tuple(s for s in stop if s)
        self._ids: list[int] = []
        self._prefix = 0  # the window: ids[_prefix:_read] were decoded already
        self._read = 0
        self.text = ""  # the whole characters decoded so far (cut at a stop string)
        self._sent = 0  # how much of `text` went out as pieces
        self.stopped = False  # a stop string was found

    @property
    def sent(self) -> str:
        return self.text[: self._sent]

    def push(self, token: int) -> str:
        """Add a token; the text that may go out now ("" when none)."""
        if self.stopped:
            return ""
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        if len(now) > len(before) and not now.endswith(REPLACEMENT):
            self.text += now[len(before) :]
            self._prefix, self._read = self._read, len(self._ids)
        return self._release()

    def flush(self) -> str:
        """The sequence ended (not at a stop string): what was held back goes out."""
        piece = self.text[self._sent :]
        self._sent = len(self.text)
        return piece

    def _release(self) -> str:
        text = self.text
        longest = max((len(s) for s in self._stop), default=0)
        start = max(0, self._sent - longest + 1)
        found = [i for i in (text.find(s, start) for s in self._stop) if i >= 0]
        if found:
            end = min(found)
            self.text, self.stopped = text[:end], True
        else:
            end = len(text) - _held(text, self._stop)
        piece = text[self._sent : end] if end > self._sent else ""
        self._sent = max(self._sent, end)
        return piece


def _held(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of `text` could begin a stop string."""
    held = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:k]):
                held = k
                break
    return held
