"""Text to speech for one job: sentence by sentence, each clip stored and announced at once."""

from queues import BlobStore, JobEvents
from shared_schemas import MAX_TEXT_CHARS, ErrorCode, EventType, Speech, SpeechClip, SynthesisJob
from shared_schemas.text import split_sentences

from .audio import encode_wav
from .engines import Engines
from .errors import VoiceError


def synthesize(job: SynthesisJob, engines: Engines, blobs: BlobStore, events: JobEvents) -> Speech:
    text = job.text.strip()
    if not text:
        raise VoiceError(ErrorCode.EMPTY_TEXT, "There is no text to speak.")
    if len(text) > MAX_TEXT_CHARS:
        raise VoiceError(
            ErrorCode.TEXT_TOO_LONG,
            f"The text is {len(text)} characters; one request speaks at most {MAX_TEXT_CHARS}. Split it.",
        )
    engine = engines.tts_for(job.voice)
    sentences = split_sentences(text)
    clips = []
    for i, sentence in enumerate(sentences):
        audio = engine.synthesize(sentence, job.voice)
        clip = SpeechClip(
            audio_key=blobs.put(job.session_id, encode_wav(audio), ".wav"),
            sample_rate=audio.sample_rate,
            duration_s=round(audio.duration_s, 3),
            voice=job.voice,
            member=job.member,
            turn_id=job.turn_id,
            index=job.index + i,
            last=i == len(sentences) - 1,
            text=sentence,
            engine=engine.name,
        )
        events.emit(EventType.AUDIO, clip.model_dump(mode="json"))
        clips.append(clip)
    return Speech(clips=clips)
