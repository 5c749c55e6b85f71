"""Telling the person's voice from the page's own, on the server: what the page is saying now, and
whether words the listener heard meanwhile are that (its echo, through the speakers into the
microphone) or the person.

Without headphones a microphone hears the answer it plays. The page no longer rests the microphone
meanwhile (that threw away everything the person said while the answer played, and 350 ms after):
two things tell the voices apart instead, both measured (README, "Realtime voice"):

1. The page plays answers through a loopback RTCPeerConnection, so the browser's echo canceller has
   the reference it needs and removes most of the echo before the listener hears it (player.js).
2. What still gets through is caught here. The app knows, word for word, what is being said: each
   `audio` event carries its sentence, and the page's `played` reports say which sentence sounds
   and when the answer ended. Words heard while an answer sounds (or within `TAIL_S` of its end)
   are compared, in order, with the words of that answer: when most of them are found there, the
   turn is our own echo and is dropped (said in a `turn_done` with status `echo`); when few are,
   it is the person (a barge-in: the answer stops where it was heard); in between we cannot tell,
   and the words are kept and shown ("I heard you while I was speaking: …"), never lost.

A correlation of the microphone's audio with the answer's PCM would decide earlier, but the app
does not get the microphone's audio in the order the page played the answer (network and device
delays of 50-300 ms, and the echo canceller has changed it); comparing words costs nothing more
than the transcript the listener makes anyway, and is what a person would do.
"""

import difflib
import enum
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Echo", "Verdict"]

TAIL_S = 1.5  # after the answer's last sound: the room, the speakers' buffer, the listener's delay
SLACK_S = 2.0  # a page that stopped reporting: the answer ends this long after its clips' length
ECHO_SHARE = 0.6  # at least this share of the words heard is the answer's, in order: our own voice
PERSON_SHARE = 0.34  # at most this share: the person


class Verdict(enum.StrEnum):
    ECHO = "echo"  # the page's own voice: dropped
    PERSON = "person"  # the person spoke over the answer: a barge-in
    UNSURE = "unsure"  # cannot tell: kept, and the page says it heard them


_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


@dataclass
class _Answer:
    turn_id: str
    sentences: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0  # the length of its clips sent so far
    first_sent: float = 0.0
    done_at: float | None = None  # when the page said it finished playing it
    stopped: bool = False  # silenced (Stop, or a barge-in): no echo of it comes any more


class Echo:
    """What this connection's page is saying, and the verdict on words heard meanwhile."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.answer: _Answer | None = None  # the answer the page plays (the last one sent to it)

    def said(self, turn_id: str, index: int, text: str, duration_s: float) -> None:
        """A clip of `turn_id` went to the page to be played."""
        now = self.clock()
        if self.answer is None or self.answer.turn_id != turn_id:
            self.answer = _Answer(turn_id, first_sent=now)
        if self.answer.stopped:
            return
        self.answer.sentences[index] = text
        self.answer.seconds += duration_s
        self.answer.done_at = None

    def played(self, turn_id: str, done: bool) -> None:
        """The page's report of where its playback is."""
        if self.answer is not None and self.answer.turn_id == turn_id and done:
            self.answer.done_at = self.clock()

    def stopped(self, turn_id: str) -> None:
        """The answer was stopped: it is silent from now."""
        if self.answer is not None and self.answer.turn_id == turn_id:
            self.answer.stopped = True

    def sounding(self) -> str | None:
        """The turn whose answer the microphone may be hearing now (playing, or just ended), if any."""
        a, now = self.answer, self.clock()
        if a is None or a.stopped:
            return None
        if a.done_at is not None:
            return a.turn_id if now - a.done_at < TAIL_S else None
        return a.turn_id if now < a.first_sent + a.seconds + SLACK_S + TAIL_S else None

    def judge(self, heard: str) -> Verdict:
        """Whether words heard while the answer sounded are its echo, the person, or cannot be told."""
        sentences = self.answer.sentences if self.answer else {}
        return judge(words(heard), [w for i in sorted(sentences) for w in words(sentences[i])])


def judge(heard: list[str], said: list[str]) -> Verdict:
    if not heard or not said:
        return Verdict.PERSON if heard else Verdict.UNSURE
    matcher = difflib.SequenceMatcher(a=heard, b=said, autojunk=False)
    found = sum(block.size for block in matcher.get_matching_blocks())
    share = found / len(heard)
    if share >= ECHO_SHARE and found >= 2:
        return Verdict.ECHO
    if share <= PERSON_SHARE:
        return Verdict.PERSON
    return Verdict.UNSURE
