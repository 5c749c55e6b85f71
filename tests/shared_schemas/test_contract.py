import pytest
from pydantic import ValidationError

import billing
import queues
import shared_schemas
from shared_schemas import (
    ErrorCode,
    Event,
    EventType,
    JobError,
    SpeechClip,
    SynthesisJob,
    Transcript,
    TranscriptionJob,
    payloads,
    split_sentences,
)


def test_public_names_are_pinned():
    assert sorted(shared_schemas.__all__) == sorted(
        [
            "AUDIO_FORMATS",
            "MAX_AUDIO_BYTES",
            "MAX_AUDIO_SECONDS",
            "MAX_CHAT_CHARS",
            "MAX_CHAT_MESSAGES",
            "MAX_GENERATED_TOKENS",
            "MAX_MIC_FRAME_BYTES",
            "MAX_TEXT_CHARS",
            "MIC_SAMPLE_RATE",
            "MIN_AUDIO_SECONDS",
            "RETRYABLE",
            "RETRY_AFTER_S",
            "SCHEMA_VERSION",
            "STT_SAMPLE_RATE",
            "VOICE_PATTERN",
            "AudioFormat",
            "ChatMessage",
            "ErrorCode",
            "Event",
            "EventType",
            "GenerationJob",
            "JobError",
            "Refusal",
            "JobPayload",
            "ListenJob",
            "PingJob",
            "Progress",
            "Segment",
            "SentenceBuffer",
            "Speech",
            "SpeechClip",
            "SynthesisJob",
            "Transcript",
            "TranscriptionJob",
            "Word",
            "listener_turn_id",
            "new_stream_ids",
            "new_turn_id",
            "payloads",
            "speech_job_id",
            "split_sentences",
            "transcript_job_id",
            "turn_of",
        ]
    )
    assert sorted(payloads.__all__) == sorted(
        [
            "PAYLOADS",
            "Audio",
            "Critique",
            "EchoChecked",
            "EventType",
            "Failed",
            "Generated",
            "Joined",
            "ListenDone",
            "Listening",
            "MemberDone",
            "MemberDropped",
            "MemberStarted",
            "Message",
            "Payload",
            "Pong",
            "Progress",
            "Routed",
            "SpeechStarted",
            "SpeechStopped",
            "Token",
            "ToolUse",
            "Transcript",
            "TranscriptPartial",
            "TurnCancelled",
            "TurnConfirmed",
            "TurnDone",
            "TurnStarted",
        ]
    )
    assert sorted(queues.__all__) == sorted(
        [
            "FALSE_WORDS",
            "SPLIT",
            "TRUE_WORDS",
            "EnvSettings",
            "Flag",
            "Names",
            "BATCH",
            "LISTEN",
            "LLM",
            "REDIS_DOWN",
            "REALTIME",
            "SPEECH",
            "AsyncBlobStore",
            "AsyncEventPublisher",
            "AsyncStorage",
            "BlobMissing",
            "BlobStore",
            "BlobTooLarge",
            "EventHub",
            "EventPublisher",
            "FairShare",
            "JobClient",
            "JobEvents",
            "JobStatus",
            "MicKeys",
            "MicReader",
            "MicWriter",
            "QueueSettings",
            "RateLimited",
            "SettingsError",
            "Subscription",
            "ajob_status",
            "announce_voices",
            "areplay",
            "as_text",
            "atrimmed",
            "configure_logging",
            "find_audio",
            "functions",
            "in_thread",
            "job_status",
            "join_wavs",
            "live_workers",
            "log_context",
            "mic",
            "replay",
            "stream_key",
            "voices_key",
        ]
    )
    assert sorted(billing.__all__) == sorted(
        [
            "COLUMNS",
            "HOLD_TTL_S",
            "UNITS",
            "AsyncLedger",
            "Charge",
            "Cost",
            "Entry",
            "Ledger",
            "Limits",
            "Refused",
            "Usage",
            "day_of",
            "price",
            "resets_at",
        ]
    )
    for module in (shared_schemas, queues, billing):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_the_transport_holds_no_billing():
    """What the council spends lives in `billing`, beside `queues`, not inside it."""
    assert not set(queues.__all__) & set(billing.__all__)


def test_jobs_round_trip_through_json_with_a_version():
    job = SynthesisJob(session_id="s1", job_id="j1", text="Hello.", voice="max", member="Analyst")
    again = SynthesisJob.model_validate_json(job.model_dump_json())
    assert again == job
    assert job.model_dump(mode="json")["schema_version"] == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"session_id": "has space", "job_id": "j", "audio_key": "k"},
        {"session_id": "s", "job_id": "j", "audio_key": "k", "format": "exe"},
        {"session_id": "s", "job_id": "j", "audio_key": "k", "schema_version": 2},
        {"session_id": "s", "job_id": "j", "audio_key": "k", "surprise": 1},
        {"session_id": "s" * 200, "job_id": "j", "audio_key": "k"},
    ],
)
def test_bad_payloads_are_refused_on_both_sides(fields):
    with pytest.raises(ValidationError):
        TranscriptionJob.model_validate(fields)


def test_voice_names_are_plain():
    with pytest.raises(ValidationError):
        SynthesisJob(session_id="s", job_id="j", text="hi", voice="../../etc/passwd")


def test_errors_say_whether_to_retry():
    assert JobError.of(ErrorCode.ENGINE_FAILED, "x").retryable
    assert not JobError.of(ErrorCode.UNDECODABLE_AUDIO, "x").retryable


def test_event_terminal_flags():
    base = {"session_id": "s", "job_id": "j", "seq": 0}
    clip = {"audio_key": "k", "sample_rate": 16_000, "duration_s": 1.0, "voice": "v", "text": "t", "engine": "e"}
    said = {"text": "hi", "language": "en", "duration_s": 1.0, "engine": "e"}
    assert Event(type=EventType.TRANSCRIPT, payload=said, **base).terminal
    assert Event(type=EventType.FAILED, payload={"code": "timeout", "message": "m"}, **base).terminal
    assert not Event(type=EventType.PROGRESS, payload={"done": 1, "total": 2}, **base).terminal
    assert not Event(type=EventType.AUDIO, payload={**clip, "last": False}, **base).terminal
    assert Event(type=EventType.AUDIO, payload={**clip, "last": True}, **base).terminal


def test_results_validate_what_the_worker_returns():
    transcript = Transcript(text="hi", language="en", duration_s=1.0, engine="whisper")
    assert Transcript.model_validate(transcript.model_dump(mode="json")) == transcript
    with pytest.raises(ValidationError):
        SpeechClip(audio_key="k", sample_rate=0, duration_s=1, voice="v", text="t", engine="e")


def test_speech_clips_say_their_chunk_and_old_payloads_still_validate():
    old = {"audio_key": "k", "sample_rate": 24_000, "duration_s": 1.0, "voice": "v", "text": "t", "engine": "e"}
    clip = SpeechClip.model_validate({**old, "index": 2, "last": False})
    assert (clip.chunk, clip.sentence_done, clip.order) == (0, True, (2, 0))
    chunk = SpeechClip.model_validate({**old, "index": 2, "chunk": 1, "sentence_done": False, "last": False})
    assert SpeechClip.model_validate_json(chunk.model_dump_json()) == chunk
    assert sorted([chunk, clip], key=lambda c: c.order) == [clip, chunk]
    with pytest.raises(ValidationError, match="sentence_done"):
        SpeechClip.model_validate({**old, "chunk": 0, "sentence_done": False, "last": True})
    with pytest.raises(ValidationError):
        SpeechClip.model_validate({**old, "chunk": -1})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Dr. Smith paid $3.50 today. Fine!", ["Dr. Smith paid $3.50 today.", "Fine!"]),
        ("Use e.g. a map. Then go.", ["Use e.g. a map.", "Then go."]),
        ('She said "stop." Then left.', ['She said "stop."', "Then left."]),
        ("Visit example.com now", ["Visit example.com now"]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        ("Wait... what? Really!", ["Wait... what?", "Really!"]),
        ("", []),
        ("   ", []),
        ("No end mark", ["No end mark"]),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_sentence_buffer_gives_sentences_as_soon_as_they_are_whole():
    from shared_schemas import SentenceBuffer

    buffer, out = SentenceBuffer(), []
    for piece in ["Hel", "lo Dr.", " Smith. It costs 3", ".50 today", "! And", " more"]:
        out.append(buffer.feed(piece))
    # "Dr." and "3." at the end of a piece are not endings; a sentence is out once the next began.
    assert out == [[], [], ["Hello Dr. Smith."], [], ["It costs 3.50 today!"], []]
    assert buffer.flush() == ["And more"]
    assert buffer.flush() == []
