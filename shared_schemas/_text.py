"""Cutting text into sentences, the same way on both sides: speech is synthesized per sentence.

No piece is longer than one synthesis job speaks (MAX_TEXT_CHARS): a sentence over it is cut at
its last comma or semicolon that fits, else at a space, else where the limit falls, so whatever
was asked to be spoken is spoken, however it is punctuated.
"""

import re

from ._limits import MAX_TEXT_CHARS

# Words after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m approx dept est fig inc ltd no vol jan feb "
    "mar apr jun jul aug sep sept oct nov dec u.s u.k".split()
)
_END = re.compile(r"""([.!?…]+)(["'”’)\]]*)(\s+|$)""")
# Where a sentence over the limit is best cut, in order: after a clause, between words.
_CLAUSE = re.compile(r"[,;]")
_CLAUSE_END = re.compile(r"[,;:](?=\s)")
_SPACE = re.compile(r"\s")


def split_sentences(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """Sentences of `text`, trimmed, none empty, none over `limit` characters. Abbreviations,
    initials, decimals and ellipses inside a sentence do not split it."""
    return [piece for sentence in _sentences(text) for piece in cut(sentence, limit)]


def cut(sentence: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """`sentence` in trimmed pieces of at most `limit` characters: each ends at the last comma or
    semicolon that fits, else at the last space, else at the limit itself. A clause that would
    leave a piece of less than half the limit gives way to a space, so pieces are not scraps."""
    pieces: list[str] = []
    rest = sentence.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]  # a space just past the limit still ends a piece that fits
        clauses = [m.end() for m in _CLAUSE.finditer(window, 0, limit)]
        spaces = [m.start() for m in _SPACE.finditer(window)]
        long_clauses = [at for at in clauses if at >= limit // 2]
        at = (long_clauses or spaces or clauses or [limit])[-1]
        piece, rest = rest[:at].strip(), rest[at:].strip()
        if piece:
            pieces.append(piece)
    if rest:
        pieces.append(rest)
    return pieces


def _sentences(text: str) -> list[str]:
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
    A sentence that passes `limit` goes out in pieces as it grows, cut as `cut` cuts.

    `first_clause=n` (n > 0): until a piece has gone out, a clause of at least n words that ends in
    a comma, semicolon or colon followed by a space goes out at once, so that the first words of an
    answer are heard without waiting for the end of a long first sentence.
    """

    def __init__(self, limit: int = MAX_TEXT_CHARS, first_clause: int = 0) -> None:
        self._text = ""
        self._limit = limit
        self._first_clause = first_clause

    def feed(self, piece: str) -> list[str]:
        self._text += piece
        sentences = split_sentences(self._text, self._limit)
        if len(sentences) < 2:
            return self._clause()
        self._first_clause = 0
        last = sentences[-1]
        self._text = self._text[self._text.rindex(last) :]
        return sentences[:-1]

    def flush(self) -> list[str]:
        sentences, self._text = split_sentences(self._text, self._limit), ""
        return sentences

    def _clause(self) -> list[str]:
        """The first clause long enough, while no piece has gone out."""
        if self._first_clause <= 0:
            return []
        for match in _CLAUSE_END.finditer(self._text):
            clause = self._text[: match.end()].strip()
            if len(clause.split()) >= self._first_clause:
                self._text, self._first_clause = self._text[match.end() :], 0
                return [clause]
        return []
