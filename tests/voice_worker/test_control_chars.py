"""Control characters never reach a TTS engine: a real worker takes them out for every engine, and
a text of nothing else fails as `empty_text`, once, not retried, like any error of the input."""

import time
import uuid

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import JobClient, replay
from shared_schemas import ErrorCode, Event, EventType, SynthesisJob

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(180)]

# Piper's voice, and an espeak-ng one (see README, voices on the CPU worker).
VOICES = ["joe", "max"]
CONTROLS = "\x00\x01\x07\x08\x1b\x7f\x80\x9b\x9f"


def speak(settings, connection, text: str, voice: str) -> tuple[list[Event], Job]:
    """The job's events once it ended, and RQ's record of it."""
    session = f"ctl-{uuid.uuid4().hex[:12]}"
    job = SynthesisJob(session_id=session, job_id=f"{session}-say", text=text, voice=voice)
    JobClient(settings, connection).enqueue(job)
    deadline = time.monotonic() + 120
    while True:
        events = [e for e in replay(connection, settings, session) if e.job_id == job.job_id]
        if any(e.terminal for e in events):
            return events, Job.fetch(job.job_id, connection=connection, serializer=JSONSerializer)
        assert time.monotonic() < deadline, f"no ending for {text!r} in {voice}: {events}"
        time.sleep(0.05)


@pytest.mark.parametrize("voice", VOICES)
def test_control_characters_are_not_spoken_and_the_rest_is(settings, connection, voice):
    events, job = speak(settings, connection, f"Hello\x00 there,{CONTROLS} council.\x1b", voice)
    assert [e.type for e in events if e.type is EventType.FAILED] == []
    clips = [e.payload.model_dump(mode="json") for e in events if e.type is EventType.AUDIO]
    assert clips and clips[-1]["last"] and clips[-1]["duration_s"] > 0.3
    assert " ".join(c["text"] for c in clips if c["chunk"] == 0) == "Hello there, council."
    assert job.get_status() == "finished"


@pytest.mark.parametrize("voice", VOICES)
@pytest.mark.parametrize("text", ["\x00", CONTROLS, " \x00\t\x85\n\x0b "])
def test_a_text_of_control_characters_only_fails_as_empty_text_once(settings, connection, voice, text):
    events, job = speak(settings, connection, text, voice)
    failed = [e.payload.model_dump(mode="json") for e in events if e.type is EventType.FAILED]
    assert len(failed) == 1, events
    assert failed[0]["code"] == ErrorCode.EMPTY_TEXT and not failed[0]["retryable"], failed[0]
    assert "control characters" in failed[0]["message"]
    assert job.get_status() == "failed"
    assert len(job.results()) == 1  # run once: an error of the input is not tried again
