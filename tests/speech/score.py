"""What a listener made of a recording, scored against its text: the events a page gets, in.

Works on event dicts as the session's stream holds them (`type`, `job_id`, `payload`), from the
listener itself (offline, bench/listen.py) or through the app (bench/stream.py, browser tests).
Standard library only.

- `turns`: turns decided (`turn_started`); `confirmed`: those confirmed (`turn_confirmed`; a listener
  that does not send it, as before #20, confirms each turn at its decision).
- `answers_over_speaker`: confirmed turns confirmed while the person was speaking or in a pause
  inside a sentence (after a span that does not end in `.`, `?` or `!`): answers that would start
  audibly over them.
- `words_kept`: the share of the recording's words found in the turns' transcripts.
- `question_ms`: for each question span, the time from its end of speech (the listener's own
  `speech_end_s` of the turn that ends there) to its confirmation; None where no confirmed turn ends
  within `NEAR_S` of it (the question was joined to a later turn, or never ended).
"""

from dataclasses import dataclass, field

from shared_schemas import turn_of

from . import Recording, words_kept

__all__ = ["Score", "score"]

NEAR_S = 0.6
SLACK_S = 0.3  # spans' ends come from Whisper's word times, which run up to ~0.3 s late
SENTENCE_END = (".", "?", "!")


@dataclass
class Score:
    turns: int
    confirmed: int
    answers_over_speaker: int
    words_kept: float
    question_ms: list[float | None] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    over: list[float] = field(default_factory=list)  # when each answer over the speaker was confirmed

    def figures(self) -> dict[str, object]:
        done = [ms for ms in self.question_ms if ms is not None]
        ordered = sorted(done)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] if ordered else None
        return {
            "turns": self.turns,
            "confirmed": self.confirmed,
            "answers_over_speaker": self.answers_over_speaker,
            "words_kept": round(self.words_kept, 3),
            "questions": len(self.question_ms),
            "questions_ended": len(done),
            "question_confirmed_p90_ms": None if p90 is None else round(p90),
            "question_ms": [None if ms is None else round(ms) for ms in self.question_ms],
        }


def score(recording: Recording, events: list[dict], offset_s: float = 0.0) -> Score:
    """`offset_s`: where the recording starts in the stream's audio time."""
    started: dict[str, dict] = {}
    confirmed_at: dict[str, float] = {}
    continued: set[str] = set()
    texts: dict[str, str] = {}
    protocol_confirms = False
    for event in events:
        kind, payload = event["type"], event.get("payload") or {}
        if kind == "turn_started" and payload.get("input", "voice") == "voice":
            started[event["job_id"]] = payload
            protocol_confirms = protocol_confirms or "confirm_ms" in payload
        elif kind == "turn_confirmed":
            confirmed_at[payload["turn_id"]] = float(payload["at_s"])
        elif kind == "speech_started" and payload.get("continues"):
            continued.add(payload["continues"])
        elif kind == "transcript" and turn_of(event["job_id"]) != event["job_id"]:
            texts[turn_of(event["job_id"])] = payload.get("text", "")
    if not protocol_confirms:  # every turn was answered at its decision
        confirmed_at = {turn_id: float(p["decided_s"]) for turn_id, p in started.items()}
    confirmed_at = {t: at - offset_s for t, at in confirmed_at.items() if t not in continued}
    over = sorted(at for at in confirmed_at.values() if _over_speaker(recording, at))
    question_ms: list[float | None] = []
    for span in recording.questions:
        near = [
            confirmed_at[t] - (float(p["speech_end_s"]) - offset_s)
            for t, p in started.items()
            if t in confirmed_at and abs(float(p["speech_end_s"]) - offset_s - span.end_s) <= NEAR_S
        ]
        question_ms.append(min(near) * 1000 if near else None)
    transcripts = [texts.get(turn_id, "") for turn_id in started]
    return Score(
        turns=len(started),
        confirmed=len(confirmed_at),
        answers_over_speaker=len(over),
        words_kept=words_kept(recording.text, transcripts),
        question_ms=question_ms,
        transcripts=transcripts,
        over=over,
    )


def _over_speaker(recording: Recording, at_s: float) -> bool:
    before = [span for span in recording.spans if span.start_s <= at_s]
    if not before or before[-1] is recording.spans[-1] and at_s >= before[-1].end_s - SLACK_S:
        return False  # before the first word, or after the last
    last = before[-1]
    return at_s < last.end_s - SLACK_S or not last.text.rstrip().endswith(SENTENCE_END)
