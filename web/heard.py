"""What a person heard of an answer they stopped: the sentences played in full, and the one playing
cut where it stopped, worked out from the session's stream (the turn's `audio` events carry each
chunk's text and duration) and the page's report of where playback was (`Position`).

The conversation then goes on from that, not from the unheard rest: the responder remembers the
cut answer (`Responder.heard`), and a `message` event marked `cut` shows it.
"""

from dataclasses import dataclass, field

import redis.asyncio

from queues import QueueSettings, areplay
from shared_schemas import payloads, transcript_job_id, turn_of

from .protocol import Position

NOTHING_HEARD = "(The person stopped this answer before hearing any of it.)"


@dataclass
class Sentence:
    member: str
    text: str
    chunks: dict[int, float] = field(default_factory=dict)  # chunk -> seconds

    def cut(self, chunk: int, offset_s: float) -> str:
        """The words heard up to `offset_s` into `chunk`, by the share of the sentence's time."""
        total = sum(self.chunks.values())
        played = sum(s for c, s in self.chunks.items() if c < chunk) + min(offset_s, self.chunks.get(chunk, 0.0))
        words = self.text.split()
        heard = int(len(words) * played / total) if total > 0 else 0
        return " ".join(words[:heard])


@dataclass(frozen=True)
class Heard:
    question: str
    member: str | None  # who was speaking the answer (the chair, or the one fast member)
    text: str  # what was heard of that member's answer
    whole: bool  # whether it was all heard after all
    heard_s: float


async def heard(
    connection: redis.asyncio.Redis, settings: QueueSettings, session_id: str, position: Position
) -> Heard | None:
    """What was heard of turn `position.turn_id`, or None when the session holds no such turn."""
    turn_id = position.turn_id
    events = [e for e in await areplay(connection, settings, session_id) if turn_of(e.job_id) == turn_id]
    if not any(isinstance(e.payload, payloads.TurnStarted) and e.job_id == turn_id for e in events):
        return None
    question, sentences = "", dict[int, Sentence]()
    for event in events:
        p = event.payload
        if isinstance(p, payloads.TurnStarted) and event.job_id == turn_id and p.text:
            question = p.text
        elif isinstance(p, payloads.Transcript) and event.job_id == transcript_job_id(turn_id):
            question = p.text
        elif isinstance(p, payloads.Audio):
            sentence = sentences.setdefault(p.index, Sentence(p.member or "", p.text))
            sentence.chunks[p.chunk] = p.duration_s
    if not sentences:
        return Heard(question, None, "", whole=False, heard_s=0.0)
    speaker = sentences[max(sentences)].member  # the final answer is spoken last
    parts, heard_s = [], 0.0
    for index in sorted(sentences):
        sentence = sentences[index]
        if index < position.index:
            heard_s += sum(sentence.chunks.values())
            if sentence.member == speaker:
                parts.append(sentence.text)
        elif index == position.index:
            heard_s += sum(s for c, s in sentence.chunks.items() if c < position.chunk) + position.offset_s
            if sentence.member == speaker and (words := sentence.cut(position.chunk, position.offset_s)):
                parts.append(words + ("…" if words != sentence.text else ""))
    text = " ".join(parts)
    whole = text == " ".join(sentences[i].text for i in sorted(sentences) if sentences[i].member == speaker)
    return Heard(question, speaker, text, whole=whole, heard_s=round(heard_s, 3))
