"""One engine, several threads: the worker's listeners recognize and decide turns while its job loop
transcribes, on the same engine objects (the contracts are in each engine interface's docstring).
Every call must give what it gives alone. Parakeet's half is in test_parakeet.py."""

import numpy as np
import pytest

from voice_worker.audio import Audio, decode, resample
from voice_worker.turn.smart_turn import SmartTurn

HEARD = ["please call me back tomorrow", "good morning to you all", "it was the best of times"]


@pytest.fixture(scope="module")
def clips(speak_flite) -> list[Audio]:
    return [resample(decode(speak_flite(text)), 16_000) for text in HEARD]


def test_listeners_recognize_while_the_job_loop_transcribes_on_one_whisper(
    whisper, clips, fox_wav, fox_text, beside_the_job_loop
):
    """Three listeners' `recognize` and the job loop's `transcribe` on one Whisper at once (no lock:
    faster-whisper keeps no state between calls, and CTranslate2 takes calls from several threads)."""
    alone, alone_fox = beside_the_job_loop(whisper, clips, decode(fox_wav))
    assert [t.text.lower().strip(" .") for t in alone] == HEARD
    assert alone_fox.text.lower().strip(" .") == fox_text


def test_listeners_ask_one_turn_model_at_once(clips, at_once):
    turn = SmartTurn()
    alone = [turn.probability(clip.samples) for clip in clips]
    together = at_once({f"listener-{i}": (lambda c=clip: turn.probability(c.samples)) for i, clip in enumerate(clips)})
    assert together.errors == [] and together.most_at_once >= 2
    for i, expected in enumerate(alone):
        assert together.results[f"listener-{i}"] == [expected] * 4


def test_listeners_own_streams_share_one_vad_with_the_job_loop(silero, clips, at_once):
    """Each listener's VADStream keeps its own state on the shared session; the job loop's
    `speech_spans` runs beside them."""

    def probabilities(samples: np.ndarray) -> list[float]:
        stream = silero.stream()
        size = stream.window
        return [stream.probability(samples[i : i + size]) for i in range(0, len(samples) - size + 1, size)]

    alone = [probabilities(clip.samples) for clip in clips]
    spans = silero.speech_spans(clips[0])
    calls = {f"listener-{i}": (lambda c=clip: probabilities(c.samples)) for i, clip in enumerate(clips)}
    together = at_once({**calls, "job-loop": lambda: silero.speech_spans(clips[0])})
    assert together.errors == [] and together.most_at_once >= 2
    for i, expected in enumerate(alone):
        assert together.results[f"listener-{i}"] == [expected] * 4
    assert together.results["job-loop"] == [spans] * 4
