"""Events are typed (one payload model per type) and their JSON is what it was as plain dicts."""

import json

import pytest
from pydantic import ValidationError

from shared_schemas import (
    Event,
    EventType,
    listener_turn_id,
    new_stream_ids,
    new_turn_id,
    payloads,
    speech_job_id,
    transcript_job_id,
    turn_of,
)

# One payload of each type as the worker and the app wrote them when payloads were dicts (key for
# key what they built), so an event stored then still reads, and reads back to the same JSON.
CLIP = {
    "kind": "speech_clip",
    "audio_key": "council:blob:s:x",
    "format": "wav",
    "sample_rate": 22050,
    "duration_s": 1.2,
    "voice": "max",
    "member": "Ada",
    "turn_id": "turn-1",
    "index": 0,
    "chunk": 0,
    "sentence_done": True,
    "last": True,
    "text": "Hello.",
    "engine": "espeak",
}
SEGMENT = {
    "text": "hi",
    "start": 0.0,
    "end": 0.5,
    "words": [],
    "avg_logprob": None,
    "compression_ratio": None,
    "no_speech_prob": None,
    "temperature": None,
    "tokens": None,
    "seek": None,
}
HEARD = {"stream_id": "mic-1", "turn": 1, "lag_ms": 12}
OLD = {
    "progress": {"kind": "progress", "done": 1.0, "total": 2.0, "segments": [SEGMENT]},
    "transcript": {
        "kind": "transcript",
        "text": "hi",
        "language": "en",
        "duration_s": 0.5,
        "segments": [SEGMENT],
        "engine": "e",
    },
    "audio": CLIP,
    "failed": {"code": "timeout", "message": "Too slow.", "retryable": True},
    "pong": {},
    "generated": {
        "text": "Hi.",
        "input_tokens": 3,
        "output_tokens": 2,
        "finish_reason": "stop",
        "model": "builtin",
        "engine": "smollm2",
        "first_token_ms": 12.5,
        "tokens_per_s": 40.0,
    },
    "token": {"text": " word", "member": None},
    "listening": {**HEARD, "mode": "hands_free", "worker": "w1", "resumed": False},
    "speech_started": {**HEARD, "at_s": 0.3, "resumed": False, "continues": "turn-abc-1"},
    "speech_stopped": {**HEARD, "at_s": 1.3},
    "transcript_partial": {**HEARD, "text": "hello"},
    "turn_confirmed": {**HEARD, "turn_id": "turn-abc-1", "at_s": 1.9},
    "listen_done": {"stream_id": "mic-1", "reason": "closed", "turns": 2, "max_lag_ms": 40, "shed": 0},
    "turn_started": {
        "input": "voice",
        "text": None,
        "stream_id": "mic-1",
        "reason": "silence",
        "speech_end_s": 1.3,
        "decided_s": 2.8,
        "turn_probability": None,
        "turn": 1,
        "confirm_ms": 0,
    },
    "joined": {"text": "one two"},
    "echo_checked": {"verdict": "echo", "over": "turn-1", "text": "hello"},
    "routed": {"route": "fast", "reason": "greeting", "by": "rules"},
    "member_started": {"member": "Ada", "role": "chair", "voice": "ada", "phase": "answer"},
    "member_done": {
        "member": "Ada",
        "phase": "answer",
        "chars": 10,
        "elapsed_s": 0.5,
        "tools": [{"tool": "clock", "status": "ok", "detail": ""}],
    },
    "member_dropped": {"member": "Ada", "reason": "timed out after 5 s", "phase": "answer"},
    "critique": {"member": "Ada", "text": "Fine."},
    "message": {"member": "Ada", "text": "Hello.", "cut": True, "heard_s": 0.4},
    "turn_done": {
        "status": "done",
        "speech_failed": 1,
        "error": {"code": "unknown_voice", "message": "No.", "retryable": False},
    },
    "turn_cancelled": {"cancelled_jobs": ["turn-1-say-2"], "reason": "barge_in"},
}
# What typed and text turns, and plain endings, said: fewer fields, and none added.
SHORT = [
    ("turn_started", {"input": "text", "text": "Hello council."}),
    ("turn_started", {"input": "voice", "text": None}),
    ("turn_done", {"status": "empty"}),
    ("turn_done", {"status": "overheard", "text": "hello"}),
    ("turn_cancelled", {"cancelled_jobs": []}),
    ("message", {"member": "Ada", "text": "Hello."}),
    ("member_done", {"member": "Ada", "phase": "answer", "chars": 10, "elapsed_s": 0.5}),
    ("speech_started", {**HEARD, "at_s": 0.3, "resumed": True}),
]


def stored(type_: str, payload: dict) -> str:
    """An event as the old envelope wrote it to a stream (`Event.model_dump_json(exclude={"id"})`)."""
    return json.dumps(
        {
            "schema_version": 1,
            "type": type_,
            "session_id": "s",
            "job_id": "turn-1",
            "seq": 0,
            "time": "2026-12-01T10:00:00Z",
            "payload": payload,
        }
    )


def test_every_type_has_its_own_payload_model():
    assert set(payloads.PAYLOADS) == set(EventType) == set(OLD)
    assert len(set(payloads.PAYLOADS.values())) == len(EventType)


@pytest.mark.parametrize(("type_", "payload"), [*OLD.items(), *SHORT])
def test_old_json_reads_typed_and_writes_back_the_same(type_, payload):
    event = Event.model_validate_json(stored(type_, payload))
    assert type(event.payload) is payloads.PAYLOADS[EventType(type_)]
    assert json.loads(event.model_dump_json(exclude={"id"})) == json.loads(stored(type_, payload))
    assert event.payload.model_dump(mode="json") == payload  # what the browser gets (web/protocol.py)


def test_readers_get_typed_fields():
    started = Event.model_validate_json(stored("turn_started", OLD["turn_started"])).payload
    assert isinstance(started, payloads.TurnStarted)
    assert (started.stream_id, started.turn, started.confirm_ms, started.turn_probability) == ("mic-1", 1, 0, None)
    typed = Event.model_validate_json(stored("turn_started", {"input": "text", "text": "hi"})).payload
    assert isinstance(typed, payloads.TurnStarted) and typed.stream_id is None and typed.confirm_ms == 0
    done = Event.model_validate_json(stored("turn_done", OLD["turn_done"])).payload
    assert isinstance(done, payloads.TurnDone) and done.error is not None and done.error.code == "unknown_voice"
    clip = Event.model_validate_json(stored("audio", CLIP)).payload
    assert isinstance(clip, payloads.Audio) and clip.order == (0, 0)


def test_a_jobs_result_is_written_whole_and_a_turns_event_as_given():
    said = payloads.Transcript(text="hi", language="en", duration_s=1.0, engine="e")
    assert said.model_dump(mode="json") == {**OLD["transcript"], "segments": [], "duration_s": 1.0, "text": "hi"}
    assert payloads.Failed(code="timeout", message="m").model_dump(mode="json")["retryable"] is False
    assert payloads.TurnDone(status="empty").model_dump(mode="json") == {"status": "empty"}
    assert payloads.TurnStarted(input="text", text=None).model_dump(mode="json") == {"input": "text", "text": None}


def test_fields_a_newer_sender_adds_are_kept_and_passed_on():
    newer = {**OLD["transcript_partial"], "confidence": 0.9}
    event = Event.model_validate_json(stored("transcript_partial", newer))
    assert event.payload.model_dump(mode="json") == newer
    envelope = {**json.loads(stored("pong", {})), "trace": "abc"}
    assert Event.model_validate(envelope).payload == payloads.Pong()


def test_a_payload_that_does_not_fit_its_type_is_refused():
    with pytest.raises(ValidationError):
        Event.model_validate_json(stored("turn_done", {"status": "sideways"}))
    with pytest.raises(ValidationError):
        Event.model_validate_json(stored("transcript_partial", {"stream_id": "mic-1"}))
    with pytest.raises(ValidationError):
        Event.model_validate_json(stored("no_such_type", {}))
    with pytest.raises(ValidationError, match="payload is Pong"):
        Event(type=EventType.PONG, session_id="s", job_id="j", seq=0, payload=payloads.Joined(text="x"))


def test_an_event_takes_its_type_from_its_payload():
    event = Event.of(payloads.Joined(text="a b"), session_id="s", job_id="turn-1", seq=3)
    assert (event.type, event.seq, event.next_seq) == (EventType.JOINED, 3, 4)
    assert Event.model_validate_json(event.model_dump_json()) == event


def test_ids_of_turns_and_their_jobs():
    turn = new_turn_id()
    assert turn.startswith("turn-") and turn != new_turn_id()
    stream, prefix = new_stream_ids()
    assert stream.startswith("mic-") and prefix == "turn-" + stream.removeprefix("mic-")
    spoken = listener_turn_id(prefix, 12)
    assert spoken == f"{prefix}-12"
    for turn_id in (turn, spoken):
        assert turn_of(transcript_job_id(turn_id)) == turn_id
        assert turn_of(speech_job_id(turn_id, 0)) == turn_of(speech_job_id(turn_id, 11)) == turn_id
        assert turn_of(turn_id) == turn_id
    # The spelling PROTOCOL.md documents, which the page reads (`<turn>-stt`, `<turn>-say-<n>`).
    assert (transcript_job_id("turn-a-1"), speech_job_id("turn-a-1", 2)) == ("turn-a-1-stt", "turn-a-1-say-2")
