"""Text to speech for one job: sentence by sentence, each clip stored and announced at once.

With an engine that streams (XTTS), a sentence goes out in chunks as they are made, so its first
chunk is heard before the rest of it exists; `chunks` decides where chunks begin and end.

No engine sees a control character: `speakable` takes them out here, for every engine at once (a
NUL made Piper fail, which looked like the engine's fault and was tried again).
"""

from collections.abc import Iterable, Iterator

import numpy as np

from queues import BlobStore, JobEvents
from shared_schemas import MAX_TEXT_CHARS, ErrorCode, Speech, SpeechClip, SynthesisJob, payloads, split_sentences

from .audio import Audio, encode_wav
from .engines import Engines
from .errors import VoiceError

# A chunk is at least this long (a sentence's last chunk may be shorter): each chunk is a clip
# that the page plays with its own <audio> element, and switching elements costs a few
# milliseconds, so chunks come no more often than twice a second. XTTS's own pieces are about
# 0.85 s (20 GPT tokens), so this joins only the pieces of an engine that makes finer ones.
MIN_CHUNK_S = 0.5

# C0 and C1 control characters (and DEL): those that separate words become a space, the others
# go; tab, line feed and carriage return stay. Lone surrogates (JSON can carry "\ud800") go too:
# no engine can even encode them.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_SPEAKABLE = str.maketrans(
    {
        **{c: (" " if chr(c).isspace() else None) for c in _CONTROLS if chr(c) not in "\t\n\r"},
        **dict.fromkeys(range(0xD800, 0xE000)),
    }
)


def speakable(text: str) -> str:
    """`text` without control characters (nor lone surrogates), which no engine speaks."""
    return text.translate(_SPEAKABLE)


def synthesize(job: SynthesisJob, engines: Engines, blobs: BlobStore, events: JobEvents) -> Speech:
    text = speakable(job.text).strip()
    if not text:
        raise VoiceError(
            ErrorCode.EMPTY_TEXT,
            "There is no text to speak."
            if not job.text.strip()
            else "The text holds nothing to speak but control characters.",
        )
    if len(text) > MAX_TEXT_CHARS:
        raise VoiceError(
            ErrorCode.TEXT_TOO_LONG,
            f"The text is {len(text)} characters; one request speaks at most {MAX_TEXT_CHARS}. Split it.",
        )
    engine = engines.tts_for(job.voice)
    sentences = split_sentences(text)
    clips = []
    for i, sentence in enumerate(sentences):
        if engine.capabilities.streaming:
            spoken = chunks(engine.synthesize_stream(sentence, job.voice), engine.capabilities.sample_rate)
        else:
            spoken = iter([(engine.synthesize(sentence, job.voice), True)])
        for n, (audio, done) in enumerate(spoken):
            clip = SpeechClip(
                audio_key=blobs.put(
                    job.session_id,
                    encode_wav(audio),
                    ".wav",
                    user=job.user or "anonymous",  # counted against them (queues/_storage.py)
                    clip=(job.turn_id, job.index + i, n) if job.turn_id else None,
                ),
                sample_rate=audio.sample_rate,
                duration_s=round(audio.duration_s, 3),
                voice=job.voice,
                member=job.member,
                turn_id=job.turn_id,
                index=job.index + i,
                chunk=n,
                sentence_done=done,
                last=done and i == len(sentences) - 1,
                text=sentence,
                engine=engine.name,
            )
            events.emit(payloads.Audio(**clip.model_dump()))
            clips.append(clip)
    return Speech(clips=clips)


def chunks(pieces: Iterable[Audio], sample_rate: int, min_s: float = MIN_CHUNK_S) -> Iterator[tuple[Audio, bool]]:
    """One sentence's pieces, as a streaming engine makes them, regrouped into chunks that play
    smoothly; each with whether it ends the sentence.

    Pieces join until they make at least `min_s`, and a chunk goes out as soon as it does. Holding
    it until the next piece came would tell whether the sentence ends there, but would keep the
    listener waiting while the engine makes that piece (with the tiny XTTS on a CPU the second chunk
    would land after the first had finished playing). So when the sentence's last piece is long
    enough to go out alone, the end is known only after it went out, and an empty chunk closes the
    sentence. What is left when the pieces end goes out as the last chunk, however short.
    """
    pending: list[Audio] = []  # pieces, not yet `min_s` together
    for piece in pieces:
        pending.append(piece)
        if sum(p.duration_s for p in pending) >= min_s:
            yield _joined(pending, sample_rate), False
            pending = []
    yield _joined(pending, sample_rate), True


def _joined(pieces: list[Audio], sample_rate: int) -> Audio:
    if any(p.sample_rate != sample_rate for p in pieces):
        raise ValueError(f"a TTS engine yielded pieces not at its own rate {sample_rate}")
    samples = np.concatenate([p.samples for p in pieces]) if pieces else np.zeros(0, dtype=np.float32)
    return Audio(samples.astype(np.float32, copy=False), sample_rate)
