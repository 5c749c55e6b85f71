"""Whether a decided turn is over: what its words say, and how long to hold it before it is confirmed.

People pause inside a sentence; the turn model (Smart Turn) hears many of those pauses, on
readings above all, as the end of a turn. So a turn the endpointer decides is *tentative*: the
listener holds it for `confirm_ms` more silence before it publishes `turn_confirmed` (the app
answers at once in text, and speaks only once confirmed); if the person goes on within the hold,
the next `speech_started` says which turn it `continues`.

Two second opinions, beside the turn model's:
- The words recognized in the pause (Whisper's punctuation): a turn that ends in `,`, `;`, a dash
  or a word that cannot end a sentence ("and", "the", "because") is not finished; one that ends in
  `?` is, after a shorter silence than the silence rule's.
- The speaker's own pauses: the longest pause this speaker resumed after, of the last few, sets how
  long a decided turn is held (a reader who pauses 900 ms between clauses is held ~900 ms; a person
  asking short questions, not at all).
"""

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass


class Words(enum.Enum):
    """What the words of a turn say about its end."""

    QUESTION = "question"  # ends in "?"
    COMPLETE = "complete"  # ends in "." or "!" after a word that may end a sentence
    UNFINISHED = "unfinished"  # ends in ",", ";", ":", a dash, or a dangling word
    UNKNOWN = "unknown"  # no words, or no punctuation


# Words after which an English sentence cannot end: articles, prepositions, conjunctions, auxiliaries.
DANGLING = frozenset(
    """a an the and or but nor so because since although though if unless whether that which who whose
    whom where when while as than of to in on at by for with from into onto about like through over
    under between after before during without within upon my your his her its our their this these
    those is are was were am be been being have has had do does did will would shall should can could
    may might must not very really just i we you he she they it's i'm we're you're they're""".split()
)


def read_words(text: str) -> Words:
    text = text.strip()
    if not text:
        return Words.UNKNOWN
    if text.endswith("?"):
        return Words.QUESTION
    if re.search(r"(,|;|:|-|\u2014|\u2013|\.\.\.|\u2026)$", text):
        return Words.UNFINISHED
    last = re.findall(r"[a-z']+", text.lower())
    if last and last[-1] in DANGLING:
        return Words.UNFINISHED
    if text.endswith((".", "!")):
        return Words.COMPLETE
    return Words.UNKNOWN


@dataclass(frozen=True)
class ConfirmSettings:
    hold_ms: int = 300  # the hold of an unsure turn from a speaker with no long pauses yet
    hold_max_ms: int = 1200  # never longer than this
    margin_ms: int = 200  # beyond the longest pause the speaker resumed after
    question_hold_ms: int = 200  # a question is held at most this long
    confident: float = 0.8  # the turn model's probability above which it is sure
    recent_pauses: int = 8  # how many of the speaker's last pauses count


def confirm_ms(
    settings: ConfirmSettings,
    reason: str,
    probability: float | None,
    words: Words,
    pauses: Sequence[float],
    waited_ms: float,
) -> int:
    """How much more silence confirms a turn decided after `waited_ms` of silence; 0: confirmed.
    `pauses`: the silences (ms) this speaker resumed speaking after, oldest first."""
    if reason != "turn_model" and reason != "question":
        return 0  # the silence rule waited longer than any hold; a closed stream or a too-long turn is over
    longest = max(pauses[-settings.recent_pauses :], default=0.0)
    needed = longest + settings.margin_ms - waited_ms
    sure = probability is not None and probability >= settings.confident and words in (Words.COMPLETE, Words.QUESTION)
    hold = max(needed, 0.0 if sure else settings.hold_ms)
    hold = min(hold, settings.hold_max_ms)
    if words is Words.QUESTION:
        hold = min(hold, settings.question_hold_ms)
    return max(0, round(hold))
