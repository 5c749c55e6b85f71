"""OpenAI's names on /v1, as pure functions: voices mapped to ours (and configured), the verbose
segment's every field for an engine that reports no decoding details."""

import math

import pytest

from queues import SettingsError
from shared_schemas import Segment, Word
from web.settings import OPENAI_VOICES, AppSettings
from web.v1.transcriptions import compression_ratio, segment_of
from web.v1.voices import spoken_by

ESPEAK = {"ada": "espeak: ...", "angus": "espeak: ...", "iris": "espeak: ...", "leon": "espeak: ...", "max": "..."}


def settings(**environ: str) -> AppSettings:
    return AppSettings.from_env({"COUNCIL_REDIS_URL": "redis://127.0.0.1:6379/0", **environ})


def test_every_openai_voice_is_one_of_espeak_s_by_default():
    assert set(OPENAI_VOICES) == {
        *("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
    }
    assert all(spoken_by(name, ESPEAK, OPENAI_VOICES) == ours for name, ours in OPENAI_VOICES.items())
    assert spoken_by("max", ESPEAK, OPENAI_VOICES) == "max"  # ours by their own names
    assert spoken_by("nobody", ESPEAK, OPENAI_VOICES) is None


def test_a_voice_no_worker_speaks_falls_to_the_first_one_offered():
    assert spoken_by("alloy", {"joe": "piper: ..."}, OPENAI_VOICES) == "joe"
    assert spoken_by("alloy", {}, OPENAI_VOICES) is None  # no worker at all: say so, not a guess


def test_the_mapping_is_configured_entry_by_entry():
    mapped = settings(COUNCIL_OPENAI_VOICES="alloy=joe, nova = ada").openai_voices
    assert mapped["alloy"] == "joe" and mapped["nova"] == "ada" and mapped["onyx"] == "leon"
    assert settings().openai_voices == OPENAI_VOICES
    with pytest.raises(SettingsError, match=r"COUNCIL_OPENAI_VOICES: entry 2 \('nova'\) is not NAME=VOICE"):
        settings(COUNCIL_OPENAI_VOICES="alloy=joe,nova")


def test_a_segment_without_decoding_details_has_every_field_from_what_it_has():
    words = [
        Word(text="Hello", start=1.0, end=1.4, probability=0.9),
        Word(text="there.", start=1.5, end=2.0, probability=0.5),
    ]
    found = segment_of(3, Segment(text="Hello there.", start=1.0, end=2.0, words=words))
    assert found == {
        "id": 3,
        "seek": 100,
        "start": 1.0,
        "end": 2.0,
        "text": "Hello there.",
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": round((math.log(0.9) + math.log(0.5)) / 2, 4),
        "compression_ratio": compression_ratio("Hello there."),
        "no_speech_prob": 0.0,
    }
    assert compression_ratio("la " * 50) > 5 > compression_ratio("Hello there.") > 0  # a loop compresses well
    whisper = Segment(
        text="Hi.",
        start=0,
        end=1,
        avg_logprob=-0.2,
        compression_ratio=0.8,
        no_speech_prob=0.01,
        temperature=0.2,
        tokens=[1, 2],
        seek=0,
    )
    assert {k: segment_of(0, whisper)[k] for k in ("avg_logprob", "temperature", "tokens")} == {
        "avg_logprob": -0.2,
        "temperature": 0.2,
        "tokens": [1, 2],
    }
