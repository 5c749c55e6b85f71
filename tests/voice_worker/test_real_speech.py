"""People's speech (tests/speech: recordings that ship in a package, with their true texts) through
our recognizer and listener with the real models."""

import numpy as np
import pytest

from tests.speech import TWO_CITIES, words_kept
from voice_worker.audio import Audio

RATE = 16_000


@pytest.fixture(scope="module")
def reading() -> np.ndarray:
    from tests.voice_worker.listen_offline import samples

    return samples(TWO_CITIES)


@pytest.mark.parametrize(
    ("first", "last", "shift_s"),
    [(0, 3, 0.0), (2, 8, 0.1), (6, 12, 0.1), (13, 14, 0.1)],
    ids=["best-to-foolishness", "worst-to-darkness", "belief-to-despair", "direct-to-heaven"],
)
def test_recognize_keeps_every_clause_of_a_long_reading(whisper, reading, first, last, shift_s):
    """#20: a 9 s turn came out as "...received, for good," with its last words gone. The fitted
    window's decode often leaves its last span unclosed when speech runs to the clip's end (or stops
    it mid-sentence), and that span was dropped whole. Clips from clause `first` to clause `last` of
    the reading, as the listener cuts them (300 ms before, 200 ms after), with the shifts that lost
    words: the old code kept 42-80 % of their words."""
    spans = TWO_CITIES.spans[first : last + 1]
    a, b = spans[0].start_s - 0.3 + shift_s, spans[-1].end_s + 0.2 + shift_s
    text = whisper.recognize(Audio(reading[int(a * RATE) : int(b * RATE)], RATE)).text
    assert words_kept(" ".join(s.text for s in spans), [text]) >= 0.9, text


def test_recognize_keeps_the_speech_a_decode_that_ended_early_left_out(whisper, reading):
    """Whisper may end its decode at a pause with seconds of speech left: the reading's 9 s last
    sentence came out as "...insisted on its being received, for good," (the last 9 words gone; seen
    in CI through the browser) in 3 of these 26 cuts, 50 ms apart. Every cut keeps its words."""
    last = TWO_CITIES.spans[-1]
    lost = []
    for shift_s in np.arange(-0.3, 0.31, 0.05):
        for after_s in (0.3, 0.6):
            clip = reading[int((last.start_s + shift_s) * RATE) : int((last.end_s + after_s) * RATE)]
            text = whisper.recognize(Audio(clip, RATE)).text
            if words_kept(last.text, [text]) < 0.9:
                lost.append((round(float(shift_s), 2), after_s, text))
    assert not lost, lost


def test_recognize_keeps_a_phrase_said_twice(whisper, reading):
    """A person may say the same words twice ("Do you hear me? Yes. Do you hear me?"): the fitted
    window's loop guard dropped the second; now such a decode is done again the usual way."""
    clause = TWO_CITIES.spans[0]
    once = reading[int((clause.start_s - 0.2) * RATE) : int((clause.end_s + 0.3) * RATE)]
    gap = np.zeros(int(0.5 * RATE), np.float32)
    text = whisper.recognize(Audio(np.concatenate([once, gap, once]), RATE)).text
    assert len([w for w in text.lower().split() if w.strip(",.") == "best"]) == 2, text


# -- the listener, on people's speech --------------------------------------------------------------


@pytest.fixture(scope="module")
def engines(whisper, silero):
    from voice_worker.engines import Engines
    from voice_worker.turn.smart_turn import SmartTurn

    return Engines(stt=whisper, tts=[], vad=silero, turn=SmartTurn())


def test_a_long_reading_with_comma_pauses_is_not_answered_clause_by_clause(engines, settings, connection):
    """The 44 s reading (one sentence, 16 comma pauses; Smart Turn calls most of them finished):
    before #20 its 14 turns were each answered at once, 13 of them over the reader. Now at most 2
    are confirmed while it is read, the rest are continued (`continues`), and its words arrive."""
    from tests.voice_worker.listen_offline import hear

    result, events = hear(TWO_CITIES, engines, settings, connection)
    assert result.answers_over_speaker <= 2, result.figures()
    assert result.words_kept >= 0.9, result.transcripts
    continued = {e["payload"]["continues"] for e in events if e["payload"].get("continues")}
    confirmed = {e["payload"]["turn_id"] for e in events if e["type"] == "turn_confirmed"}
    assert len(continued) >= 8 and not continued & confirmed
    # Every decided turn is either continued or confirmed (the last by the end of the stream).
    decided = {e["job_id"] for e in events if e["type"] == "turn_started"}
    assert decided == continued | confirmed


def _alone(recording, span, before_s: float = 0.3, after_s: float = 0.25):
    """One span of a recording cut out, as a recording of its own (the scorer's times shift)."""
    from dataclasses import replace

    from tests.speech import Span
    from tests.voice_worker.listen_offline import samples

    start_s = max(0.0, span.start_s - before_s)
    audio = samples(recording)[int(start_s * RATE) : int((span.end_s + after_s) * RATE)]
    alone = Span(span.start_s - start_s, span.end_s - start_s, span.text)
    return replace(recording, text=span.text, spans=(alone,)), audio


@pytest.mark.parametrize("index", [0, 5], ids=["ever-tried", "fail-better"])
def test_a_short_complete_sentence_spoken_by_a_person_is_confirmed_within_0_8_s(engines, settings, connection, index):
    from tests.speech import BECKETT
    from tests.voice_worker.listen_offline import hear

    sentence, audio = _alone(BECKETT, BECKETT.spans[index])
    sentence = replace_question(sentence)
    result, events = hear(sentence, engines, settings, connection, audio=audio)
    (ms,) = result.question_ms
    assert ms is not None and ms <= 800, result.figures()
    assert result.words_kept == 1.0, result.transcripts


@pytest.mark.parametrize("index", [0, 4, 5], ids=["hear-me", "talking-about", "remember-the-day"])
def test_a_complete_question_is_confirmed_within_0_8_s_synthetic_voice(engines, settings, connection, index):
    """The only short questions we have ship as synthetic speech (ZipVoice, tests/speech/README.md):
    a contrast set, each question alone in its stream."""
    from tests.speech import ENDGAME
    from tests.voice_worker.listen_offline import hear

    question, audio = _alone(ENDGAME, ENDGAME.spans[index])
    result, _ = hear(question, engines, settings, connection, audio=audio)
    (ms,) = result.question_ms
    assert ms is not None and ms <= 800, result.figures()


def replace_question(recording):
    """Score a sentence's end as a question's: the scorer times the end → confirmation of spans
    ending in "?"; a complete sentence is timed the same way."""
    from dataclasses import replace

    from tests.speech import Span

    (span,) = recording.spans
    return replace(recording, spans=(Span(span.start_s, span.end_s, span.text.rstrip(".") + "?"),))
