"""Cutting text into sentences, the same way on both sides: speech is synthesized per sentence."""

import re

# Words after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m approx dept est fig inc ltd no vol jan feb "
    "mar apr jun jul aug sep sept oct nov dec u.s u.k".split()
)
_END = re.compile(r"""([.!?…]+)(["'”’)\]]*)(\s+|$)""")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, trimmed, none empty. Abbreviations, initials, decimals and
    ellipses inside a sentence do not split it."""
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        end = match.end()
        if match.group(1) == "." and _is_abbreviation(text[start : match.start()]):
            continue
        if not match.group(3) and end < len(text):  # "3.5", "example.com": no space, no end
            continue
        if text[end : end + 1].islower():  # "Wait... what?": a sentence goes on in lower case
            continue
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_abbreviation(before: str) -> bool:
    words = before.split()
    if not words:
        return False
    word = words[-1].lower().lstrip("(\"'“‘")
    # A single letter ("J. Smith") or a known abbreviation ("Dr.", "e.g.").
    return (len(word) == 1 and word.isalpha()) or word in _ABBREVIATIONS


class SentenceBuffer:
    """Cuts streamed text into sentences as it arrives: feed pieces, get back whole sentences.

    A sentence is given out once the text after it has begun, so "Dr." or "3." at the end of a
    piece is never taken for an ending; `flush()` gives out what is left when the stream ends.
    """

    def __init__(self) -> None:
        self._text = ""

    def feed(self, piece: str) -> list[str]:
        self._text += piece
        sentences = split_sentences(self._text)
        if len(sentences) < 2:
            return []
        last = sentences[-1]
        self._text = self._text[self._text.rindex(last) :]
        return sentences[:-1]

    def flush(self) -> list[str]:
        sentences, self._text = split_sentences(self._text), ""
        return sentences
