"""Subtitle cues from a transcript, as common subtitling practice has them (the BBC's and
Netflix's guidelines agree on these): pure functions, no I/O.

- A cue holds at most 2 lines of at most 42 characters.
- It lasts at least MIN_SECONDS (1 s: less cannot be read) and at most MAX_SECONDS (7 s).
- Cues break at the end of a sentence, else at the end of a clause (after , ; : or a dash), else
  between words, never inside a word; a pause in the speech (PAUSE_SECONDS) also ends a cue.
- No cue is one word alone when a neighbour can take it.
- A cue's two lines break where the text does (after punctuation), else as evenly as possible.

The engine's segments are only where its decoder stopped, often mid-sentence ("...it was / the
age of foolishness"), so cues are built from the words and their times, across segments. A
segment without word times has its words' times estimated from their length within it.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from shared_schemas import Segment, Transcript

LINE_CHARS: Final = 42
LINES: Final = 2
MIN_SECONDS: Final = 1.0
MAX_SECONDS: Final = 7.0
PAUSE_SECONDS: Final = 1.0
# A sentence ends a cue once the cue holds this much; shorter sentences share one ("Yes. I do.").
SENTENCE_MIN_CHARS: Final = 10

_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_CLAUSE_END = re.compile(r"([,;:]|—|–|--)[\"'”’)\]]*$")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str  # its lines, joined by "\n"


@dataclass(frozen=True)
class _Word:
    text: str
    start: float
    end: float


def _words_of(segment: Segment) -> list[_Word]:
    if segment.words:
        return [_Word(w.text.strip(), w.start, max(w.end, w.start)) for w in segment.words if w.text.strip()]
    parts = segment.text.split()
    total = sum(len(p) + 1 for p in parts)
    found, at, span = [], segment.start, max(0.0, segment.end - segment.start)
    for part in parts:  # no word times: each word its share of the segment, by length
        length = span * (len(part) + 1) / total
        found.append(_Word(part, at, at + length))
        at += length
    return found


def lines(text: str, width: int = LINE_CHARS) -> list[str]:
    """`text` in at most two lines of at most `width` characters where it can be: broken after
    punctuation when that keeps both lines within `width`, else as evenly as possible. Text that
    cannot fit (a word over `width`) still comes back, in as few lines as it allows."""
    if len(text) <= width:
        return [text]
    words = text.split(" ")
    best: tuple[float, int] | None = None
    for n in range(1, len(words)):
        top, bottom = " ".join(words[:n]), " ".join(words[n:])
        if len(top) > width or len(bottom) > width:
            continue
        score = abs(len(top) - len(bottom)) - (20 if _SENTENCE_END.search(top) or _CLAUSE_END.search(top) else 0)
        if best is None or score < best[0]:
            best = (score, n)
    if best is None:
        n = max(1, min(range(1, len(words)), key=lambda k: abs(len(" ".join(words[:k])) - width)))
        return [" ".join(words[:n]), " ".join(words[n:])]
    return [" ".join(words[: best[1]]), " ".join(words[best[1] :])]


def fits(text: str, width: int = LINE_CHARS) -> bool:
    return all(len(line) <= width for line in lines(text, width))


def _text(words: list[_Word]) -> str:
    return " ".join(w.text for w in words)


def _break_at(group: list[_Word]) -> int:
    """Where to end a cue that cannot take the next word: after the group's last sentence end,
    else its last clause end, keeping at least two words on each side where it can; else all."""
    for pattern in (_SENTENCE_END, _CLAUSE_END):
        for n in range(len(group) - 1, 1, -1):
            if pattern.search(group[n - 1].text):
                return n
    return len(group)


def _groups(words: list[_Word]) -> list[list[_Word]]:
    groups: list[list[_Word]] = []
    group: list[_Word] = []
    for word in words:
        if group:
            paused = word.start - group[-1].end >= PAUSE_SECONDS
            if paused:
                groups.append(group)
                group = []
            else:  # what a clause break leaves may still not take the word: break again
                while group and (not fits(_text([*group, word])) or word.end - group[0].start > MAX_SECONDS):
                    n = _break_at(group)
                    groups.append(group[:n])
                    group = group[n:]
        group.append(word)
        if _SENTENCE_END.search(word.text) and len(_text(group)) >= SENTENCE_MIN_CHARS:
            groups.append(group)
            group = []
    if group:
        groups.append(group)
    return _no_single_words(groups)


def _fits_cue(words: list[_Word]) -> bool:
    return fits(_text(words)) and words[-1].end - words[0].start <= MAX_SECONDS


def _no_single_words(groups: list[list[_Word]]) -> list[list[_Word]]:
    """A one-word group joins the group before or after it where the result still fits a cue;
    else it takes the last word of the one before (so neither is one word)."""
    out: list[list[_Word]] = []
    for n, group in enumerate(groups):
        if len(group) != 1:
            out.append(group)
            continue
        following = groups[n + 1] if n + 1 < len(groups) else None
        if out and _fits_cue([*out[-1], *group]):
            out[-1] = [*out[-1], *group]
        elif following is not None and _fits_cue([*group, *following]):
            groups[n + 1] = [*group, *following]
        elif out and len(out[-1]) > 2:
            out.append([out[-1][-1], *group])
            out[-2] = out[-2][:-1]
        else:
            out.append(group)  # nothing else to pair it with: a one-word transcript
    return out


def _timed(groups: list[list[_Word]]) -> list[Cue]:
    """Each group as a cue: lengthened to MIN_SECONDS into the silence after it (never over the
    next cue), shortened to MAX_SECONDS."""
    found: list[Cue] = []
    for n, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        limit = groups[n + 1][0].start if n + 1 < len(groups) else float("inf")
        end = min(max(end, start + MIN_SECONDS), max(limit, end), start + MAX_SECONDS)
        found.append(Cue(round(start, 3), round(end, 3), "\n".join(lines(_text(group)))))
    return found


def subtitle_cues(transcript: Transcript) -> list[Cue]:
    """The transcript's cues in time order. Without segments, its text over the whole audio."""
    segments: Iterable[Segment] = sorted(transcript.segments, key=lambda s: s.start)
    if not transcript.segments:
        if not transcript.text.strip():
            return []
        segments = [Segment(text=transcript.text, start=0.0, end=transcript.duration_s)]
    words = [w for segment in segments for w in _words_of(segment)]
    return _timed(_groups(words)) if words else []
