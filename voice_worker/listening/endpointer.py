"""Where a spoken turn starts and ends: a pure state machine over VAD probabilities.

Fed one probability per VAD window (32 ms of audio), it says what to do, as actions; the listener
(`listener.py`) does them, and tells it what the turn model answered. Time is audio time in
milliseconds from the stream's start, so the same audio always gives the same decisions, however
fast or late it is read.

    QUIET ──voiced min_speech_ms──▶ SPEAKING ──unvoiced pause_ms──▶ PAUSED ──turn model: finished──▶ turn ends
      ▲                               ▲   │                          │  │
      │                               │   └ unvoiced speculate_ms:   │  └─ unvoiced max_silence_ms ──▶ turn ends
      │                               │     recognize now, so the    │
      │                               │     transcript is ready      └─ voiced resume_ms ──▶ SPEAKING
      └──────────── after a turn ends ┴──────────────────────────────────────────────────────────────

Hands-free, the turn ends when the turn model says the speaker has finished (asked once the pause
reaches `pause_ms`: asking it again later in a long pause changed nothing on our recordings of
people, tests/speech), or after `max_silence_ms` whatever it says, or at `max_turn_ms`. The words
recognized in the pause are a second opinion (`confirm.Words`, given with the model's answer): a turn whose words end
unfinished ("…and the", "…of times,") waits for the silence rule; one that ends in a question ends
after `question_silence_ms` even when the model hesitates. Push-to-talk (`decides=False`), only
`close()` ends it; the VAD still marks speech for the page.

A decided turn is tentative until confirmed (confirm.py): the listener says how long to `hold` it;
once that much more silence has passed with no speech, `TurnConfirmed`; if the speaker goes on
first, the next `SpeechStarted` has `continues`. The endpointer also keeps the pauses the speaker
resumed after (`pauses`), from which the listener sets the hold.
"""

import enum
from dataclasses import dataclass

from .confirm import Words


@dataclass(frozen=True)
class EndpointSettings:
    window_ms: float = 32.0  # silero: 512 samples at 16 kHz
    start_threshold: float = 0.5  # speech starts above this probability...
    stop_threshold: float = 0.35  # ...and goes on until it falls below this one
    min_speech_ms: int = 160  # voiced this long in a row: speech (noise bursts are shorter)
    resume_ms: int = 64  # voiced this long during a pause: the speaker goes on
    pre_roll_ms: int = 300  # audio kept before speech started: its first syllable
    speculate_ms: int = 64  # unvoiced this long: recognize what was said, in case the turn ends
    pause_ms: int = 200  # unvoiced this long: speech stopped; ask the turn model
    turn_threshold: float = 0.5  # the turn model's probability above which the turn is over
    question_silence_ms: int = 500  # unvoiced this long after words ending in "?": the turn is over
    max_silence_ms: int = 1500  # unvoiced this long: the turn is over, whatever the model said
    max_turn_ms: int = 60_000  # a turn this long ends, even mid-speech
    partial_every_ms: int = 600  # interim words at most this often while speaking
    min_partial_ms: int = 400  # and not before this much speech


class State(enum.Enum):
    QUIET = "quiet"
    SPEAKING = "speaking"
    PAUSED = "paused"


@dataclass(frozen=True)
class SpeechStarted:
    at_ms: float
    start_ms: float  # where the turn's audio begins: `at_ms` less the pre-roll
    resumed: bool = False
    continues: bool = False  # a new turn that goes on with the turn held before it (not confirmed)


@dataclass(frozen=True)
class SpeechStopped:
    at_ms: float  # where the speech ended (the end of its last voiced window)


@dataclass(frozen=True)
class Recognize:
    """Recognize the turn's audio up to `upto_ms`: interim words, or (`final_candidate`) a
    transcript that is final if the turn ends before the speaker says more."""

    upto_ms: float
    final_candidate: bool = False


@dataclass(frozen=True)
class AskTurn:
    upto_ms: float  # the turn's audio up to here, its silence included


@dataclass(frozen=True)
class TurnEnded:
    reason: str  # turn_model, question, silence, max_turn, closed
    speech_end_ms: float  # where the last speech ended
    at_ms: float  # when it was decided
    probability: float | None = None  # the turn model's last answer, when it was asked
    spoke: bool = True  # whether there was speech at all (push-to-talk may close on silence)


@dataclass(frozen=True)
class TurnConfirmed:
    """The held turn had its hold of silence: it is over."""

    at_ms: float


Action = SpeechStarted | SpeechStopped | Recognize | AskTurn | TurnEnded | TurnConfirmed

PAUSES_KEPT = 16


class Endpointer:
    def __init__(self, settings: EndpointSettings | None = None, decides: bool = True) -> None:
        self.settings = settings or EndpointSettings()
        self.decides = decides
        self.state = State.QUIET
        self.now_ms = 0.0
        self.start_ms = 0.0  # where the current turn's audio begins
        self.speech_end_ms = 0.0
        self.spoke = False  # whether the current turn has had speech
        self._voiced_run = 0.0  # ms voiced in a row
        self._unvoiced_run = 0.0  # ms unvoiced in a row
        self._last_partial_ms = 0.0
        self._speculated = False
        self._asked = False
        self._probability: float | None = None
        self._words = Words.UNKNOWN
        self._held_until_ms: float | None = None  # a decided turn awaits confirmation until then
        self._last_speech_end_ms: float | None = None  # of the last turn, for the pause before the next
        self.pauses: list[float] = []  # the pauses (ms) the speaker resumed after, oldest first

    def window(self, probability: float) -> list[Action]:
        """The next window's speech probability: what to do now."""
        s = self.settings
        self.now_ms += s.window_ms
        speaking = self.state is State.SPEAKING
        voiced = probability >= (s.stop_threshold if speaking else s.start_threshold)
        if voiced:
            self._voiced_run += s.window_ms
            self._unvoiced_run = 0.0
            if speaking:
                self.speech_end_ms = self.now_ms
        else:
            self._unvoiced_run += s.window_ms
            self._voiced_run = 0.0
        match self.state:
            case State.QUIET:
                return self._quiet(voiced) + self._confirm()
            case State.SPEAKING:
                return self._speaking(voiced)
            case State.PAUSED:
                return self._paused(voiced)

    def hold(self, confirm_ms: float) -> list[Action]:
        """Hold the turn just decided until `confirm_ms` more silence (0: confirmed now)."""
        self._held_until_ms = self.now_ms + confirm_ms
        return self._confirm()

    def _confirm(self) -> list[Action]:
        held = self._held_until_ms
        if held is None or self.now_ms < held or self._voiced_run > 0 or self.state is not State.QUIET:
            return []
        self._held_until_ms = None
        return [TurnConfirmed(self.now_ms)]

    def _pause(self, ms: float) -> None:
        if 0 < ms <= self.settings.max_silence_ms:
            self.pauses = [*self.pauses[-(PAUSES_KEPT - 1) :], ms]

    def _quiet(self, voiced: bool) -> list[Action]:
        s = self.settings
        if not (voiced and self._voiced_run >= s.min_speech_ms):
            return []
        onset = self.now_ms - self._voiced_run
        if not self.spoke:  # the turn's audio starts here (push-to-talk: it started at the click)
            self.start_ms = max(self.start_ms, onset - s.pre_roll_ms) if self.decides else self.start_ms
        if self._last_speech_end_ms is not None:
            self._pause(onset - self._last_speech_end_ms)
        continues, self._held_until_ms = self._held_until_ms is not None, None
        self.state, self.spoke, self.speech_end_ms = State.SPEAKING, True, self.now_ms
        self._last_partial_ms = self.now_ms
        return [SpeechStarted(at_ms=onset, start_ms=self.start_ms, continues=continues)]

    def _speaking(self, voiced: bool) -> list[Action]:
        s = self.settings
        actions: list[Action] = []
        if voiced:
            self._speculated = False
            if (
                self.now_ms - self._last_partial_ms >= s.partial_every_ms
                and self.now_ms - self.start_ms >= s.min_partial_ms
            ):
                self._last_partial_ms = self.now_ms
                actions.append(Recognize(self.now_ms))
        else:
            if self._unvoiced_run >= s.speculate_ms and not self._speculated:
                self._speculated = True
                actions.append(Recognize(self.now_ms, final_candidate=True))
            if self._unvoiced_run >= s.pause_ms:
                self.state, self._asked, self._probability = State.PAUSED, False, None
                actions.append(SpeechStopped(self.speech_end_ms))
                if self.decides:
                    self._asked, self._words = True, Words.UNKNOWN
                    actions.append(AskTurn(self.now_ms))
        return actions + self._too_long()

    def _paused(self, voiced: bool) -> list[Action]:
        s = self.settings
        if voiced and self._voiced_run >= s.resume_ms:
            onset = self.now_ms - self._voiced_run
            self._pause(onset - self.speech_end_ms)
            self.state, self._speculated = State.SPEAKING, False
            self._last_partial_ms = self.speech_end_ms = self.now_ms
            return [SpeechStarted(at_ms=onset, start_ms=self.start_ms, resumed=True)]
        if self.decides and not voiced:
            if self._unvoiced_run >= s.max_silence_ms:
                return [self._end("silence")]
            if self._words is Words.QUESTION and self._unvoiced_run >= s.question_silence_ms:
                return [self._end("question")]
        return self._too_long()

    def turn_model(self, probability: float, words: Words = Words.UNKNOWN) -> list[Action]:
        """What the turn model said when asked (AskTurn), and what the words heard in the pause
        say (`words`); ignored once speech went on."""
        if self.state is not State.PAUSED or not self._asked:
            return []
        self._probability, self._words = probability, words
        if probability >= self.settings.turn_threshold and words is not Words.UNFINISHED:
            return [self._end("turn_model")]
        if words is Words.QUESTION and self._unvoiced_run >= self.settings.question_silence_ms:
            return [self._end("question")]
        return []

    @property
    def keep_from_ms(self) -> float:
        """The oldest audio a turn may still need: the turn's start, or the pre-roll of one that
        could begin with the next window."""
        s = self.settings
        if self.spoke or not self.decides:
            return self.start_ms
        return self.now_ms - (s.pre_roll_ms + s.min_speech_ms + 2 * s.window_ms)

    def close(self) -> list[Action]:
        """The person closed the stream (released push-to-talk, turned the microphone off): a held
        turn is confirmed, one under way ends."""
        held: list[Action] = []
        if self._held_until_ms is not None:
            self._held_until_ms = None
            held.append(TurnConfirmed(self.now_ms))
        if self.state is State.QUIET and not (self.spoke or not self.decides):
            return held
        if not self.spoke:
            self.speech_end_ms = self.now_ms
        return [*held, self._end("closed")]

    def _too_long(self) -> list[Action]:
        if self.decides and self.now_ms - self.start_ms >= self.settings.max_turn_ms:
            return [self._end("max_turn")]
        return []

    def _end(self, reason: str) -> TurnEnded:
        ended = TurnEnded(reason, self.speech_end_ms, self.now_ms, self._probability, self.spoke)
        self._last_speech_end_ms = self.speech_end_ms if self.spoke else None
        self.state, self.spoke = State.QUIET, False
        self.start_ms = self.now_ms
        self._voiced_run = self._unvoiced_run = 0.0
        self._speculated = self._asked = False
        self._probability, self._words = None, Words.UNKNOWN
        return ended
