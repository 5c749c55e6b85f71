"""Where turns start and end, on made-up VAD probabilities (no model): the endpointer is pure."""

from voice_worker.listening.confirm import ConfirmSettings, Words, confirm_ms, read_words
from voice_worker.listening.endpointer import (
    AskTurn,
    Endpointer,
    EndpointSettings,
    Recognize,
    SpeechStarted,
    SpeechStopped,
    TurnConfirmed,
    TurnEnded,
)

S = EndpointSettings()
W = S.window_ms


def feed(
    endpointer: Endpointer,
    pattern: list[tuple[float, float]],
    turn_model: float | None = None,
    words: Words = Words.UNKNOWN,
    hold_ms: float | None = None,
) -> list:
    """Feed (probability, milliseconds) runs; answer every AskTurn with `turn_model` (and what the
    `words` say), and hold every decided turn `hold_ms` (as the listener does). All actions."""
    actions = []
    for probability, ms in pattern:
        for _ in range(round(ms / W)):
            todo = endpointer.window(probability)
            while todo:
                action = todo.pop(0)
                actions.append(action)
                if isinstance(action, AskTurn) and turn_model is not None:
                    todo.extend(endpointer.turn_model(turn_model, words))
                if isinstance(action, TurnEnded) and hold_ms is not None:
                    todo.extend(endpointer.hold(hold_ms))
    return actions


def kinds(actions: list) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_speech_then_a_pause_the_turn_model_calls_finished_ends_the_turn():
    e = Endpointer()
    actions = feed(e, [(0.0, 640), (0.9, 1600), (0.05, 400)], turn_model=0.9)
    started = [a for a in actions if isinstance(a, SpeechStarted)]
    assert len(started) == 1 and abs(started[0].at_ms - 640) <= W
    assert started[0].start_ms == started[0].at_ms - S.pre_roll_ms
    # Interim words while speaking, a final candidate early in the pause, then the turn model.
    assert any(isinstance(a, Recognize) and not a.final_candidate for a in actions)
    order = kinds(actions)
    first_candidate = next(i for i, a in enumerate(actions) if isinstance(a, Recognize) and a.final_candidate)
    assert first_candidate < order.index("SpeechStopped") < order.index("AskTurn") < order.index("TurnEnded")
    ended = next(a for a in actions if isinstance(a, TurnEnded))
    assert ended.reason == "turn_model" and ended.probability == 0.9
    assert abs(ended.speech_end_ms - (640 + 1600)) <= W
    # Decided once the pause reached pause_ms (and not a window later).
    assert ended.at_ms - ended.speech_end_ms <= S.pause_ms + W
    candidate = next(a for a in actions if isinstance(a, Recognize) and a.final_candidate)
    assert candidate.upto_ms - ended.speech_end_ms <= S.speculate_ms + W


def test_a_pause_the_turn_model_calls_unfinished_waits_for_more_speech():
    e = Endpointer()
    actions = feed(e, [(0.9, 800), (0.05, 400), (0.9, 800), (0.05, 300)], turn_model=0.1)
    assert "TurnEnded" not in kinds(actions)
    assert kinds(actions).count("SpeechStopped") == 2 and kinds(actions).count("AskTurn") == 2
    resumed = [a for a in actions if isinstance(a, SpeechStarted) and a.resumed]
    assert len(resumed) == 1
    # Then the turn model says finished: one turn, covering both stretches.
    assert e.turn_model(0.8) == [TurnEnded("turn_model", e.speech_end_ms, e.now_ms, 0.8)]


def test_a_long_silence_ends_the_turn_whatever_the_turn_model_says():
    e = Endpointer()
    actions = feed(e, [(0.9, 800), (0.05, S.max_silence_ms + 2 * W)], turn_model=0.1)
    ended = [a for a in actions if isinstance(a, TurnEnded)]
    assert len(ended) == 1 and ended[0].reason == "silence"
    assert abs((ended[0].at_ms - ended[0].speech_end_ms) - S.max_silence_ms) <= W


def test_a_turn_that_never_pauses_ends_at_the_longest_turn():
    e = Endpointer(EndpointSettings(max_turn_ms=5000))
    actions = feed(e, [(0.9, 8000)])
    ended = [a for a in actions if isinstance(a, TurnEnded)]
    assert ended and ended[0].reason == "max_turn" and ended[0].at_ms <= 5000 + S.pre_roll_ms + W


def test_short_bursts_and_weak_probabilities_never_start_speech():
    e = Endpointer()
    bursts = [(0.9, 96), (0.0, 300)] * 20 + [(0.45, 2000)]  # clicks, and a hum just under the threshold
    assert feed(e, bursts, turn_model=1.0) == []


def test_a_dip_inside_a_word_does_not_stop_speech():
    e = Endpointer()
    actions = feed(e, [(0.9, 500), (0.4, 96), (0.9, 500)])  # above stop_threshold: still speech
    assert "SpeechStopped" not in kinds(actions)


def test_push_to_talk_ends_only_when_closed_and_keeps_the_whole_press():
    e = Endpointer(decides=False)
    actions = feed(e, [(0.0, 300), (0.9, 1000), (0.0, 3000)], turn_model=1.0)
    assert "AskTurn" not in kinds(actions) and "TurnEnded" not in kinds(actions)
    assert "SpeechStopped" in kinds(actions)
    (ended,) = e.close()
    assert ended.reason == "closed" and ended.spoke
    assert next(a for a in actions if isinstance(a, SpeechStarted)).start_ms == 0.0


def test_push_to_talk_closed_on_silence_is_a_turn_with_nothing_said():
    e = Endpointer(decides=False)
    feed(e, [(0.0, 1000)])
    (ended,) = e.close()
    assert ended.reason == "closed" and not ended.spoke


def test_hands_free_closed_mid_speech_ends_that_turn_and_closed_when_quiet_ends_none():
    e = Endpointer()
    feed(e, [(0.9, 600)])
    (ended,) = e.close()
    assert ended.reason == "closed"
    quiet = Endpointer()
    feed(quiet, [(0.0, 600)])
    assert quiet.close() == []


def test_the_next_turn_starts_after_the_last_and_keeps_its_pre_roll():
    e = Endpointer()
    actions = feed(e, [(0.9, 800), (0.0, 300), (0.0, 100), (0.9, 800), (0.0, 300)], turn_model=0.9)
    ended = [a for a in actions if isinstance(a, TurnEnded)]
    starts = [a for a in actions if isinstance(a, SpeechStarted)]
    assert len(ended) == 2 and len(starts) == 2
    # The second turn's audio may not reach back into the first: it starts where the first ended.
    assert starts[1].start_ms == ended[0].at_ms
    assert all(not isinstance(a, SpeechStopped) or a.at_ms >= 0 for a in actions)


def test_what_may_be_forgotten_while_quiet_is_everything_before_the_pre_roll():
    e = Endpointer()
    feed(e, [(0.0, 5000)])
    assert e.now_ms - e.keep_from_ms <= S.pre_roll_ms + S.min_speech_ms + 3 * W
    feed(e, [(0.9, 500)])
    assert e.keep_from_ms == e.start_ms <= e.now_ms - 500 - S.pre_roll_ms + W


def test_a_held_turn_is_confirmed_after_its_hold_of_silence():
    e = Endpointer()
    actions = feed(e, [(0.9, 800), (0.0, 1200)], turn_model=0.9, hold_ms=400)
    ended = next(a for a in actions if isinstance(a, TurnEnded))
    (confirmed,) = [a for a in actions if isinstance(a, TurnConfirmed)]
    assert 400 <= confirmed.at_ms - ended.at_ms <= 400 + W
    assert e.hold(0) == [TurnConfirmed(e.now_ms)]  # 0: confirmed at once


def test_speech_within_the_hold_continues_the_held_turn_and_it_is_never_confirmed():
    e = Endpointer()
    actions = feed(e, [(0.9, 800), (0.0, 500), (0.9, 600), (0.0, 1000)], turn_model=0.9, hold_ms=600)
    starts = [a for a in actions if isinstance(a, SpeechStarted)]
    assert [s.continues for s in starts] == [False, True]
    ended = [a for a in actions if isinstance(a, TurnEnded)]
    first_confirm = next(i for i, a in enumerate(actions) if isinstance(a, TurnConfirmed))
    assert first_confirm > actions.index(ended[1])  # only the second turn is confirmed
    # The pause the speaker went on after is remembered (from the speech's end to its return).
    assert e.pauses and abs(e.pauses[-1] - 500) <= 2 * W
    # Speech after the hold does not continue anything.
    late = Endpointer()
    actions = feed(late, [(0.9, 800), (0.0, 900), (0.9, 600)], turn_model=0.9, hold_ms=300)
    assert [s.continues for s in actions if isinstance(s, SpeechStarted)] == [False, False]


def test_closing_the_stream_confirms_a_held_turn():
    e = Endpointer()
    feed(e, [(0.9, 800), (0.0, 300)], turn_model=0.9, hold_ms=1000)
    assert [type(a) for a in e.close()] == [TurnConfirmed]


def test_unfinished_words_overrule_the_turn_model_and_a_question_needs_less_silence():
    unfinished = Endpointer()
    actions = feed(unfinished, [(0.9, 800), (0.0, 1000)], turn_model=0.95, words=Words.UNFINISHED)
    assert "TurnEnded" not in kinds(actions)  # the silence rule ends it (at max_silence_ms)
    actions = feed(unfinished, [(0.0, 600)], turn_model=0.95, words=Words.UNFINISHED)
    assert [a.reason for a in actions if isinstance(a, TurnEnded)] == ["silence"]
    question = Endpointer()
    actions = feed(question, [(0.9, 800), (0.0, 700)], turn_model=0.2, words=Words.QUESTION)
    (ended,) = [a for a in actions if isinstance(a, TurnEnded)]
    assert ended.reason == "question"
    assert S.question_silence_ms <= ended.at_ms - ended.speech_end_ms <= S.question_silence_ms + W


def test_what_the_words_say_about_the_end_of_a_turn():
    assert read_words("What time is it?") is Words.QUESTION
    assert read_words("It was the best of times,") is Words.UNFINISHED
    assert read_words("I went there because") is Words.UNFINISHED
    assert read_words("I'd like to book the.") is Words.UNFINISHED
    assert read_words("Fail better.") is Words.COMPLETE
    assert read_words("") is Words.UNKNOWN


def test_the_hold_follows_the_speakers_own_pauses():
    c = ConfirmSettings()
    # No history, sure: confirmed at once; unsure: the base hold.
    assert confirm_ms(c, "turn_model", 0.95, Words.COMPLETE, [], 224) == 0
    assert confirm_ms(c, "turn_model", 0.6, Words.COMPLETE, [], 224) == c.hold_ms
    # A reader who went on after 900 ms pauses is held past such a pause, within the bound.
    held = confirm_ms(c, "turn_model", 0.95, Words.COMPLETE, [600, 900], 224)
    assert held == 900 + c.margin_ms - 224
    assert confirm_ms(c, "turn_model", 0.95, Words.COMPLETE, [1500], 224) == c.hold_max_ms
    # A question is held at most question_hold_ms; the silence rule and a closed stream, not at all.
    assert confirm_ms(c, "question", 0.2, Words.QUESTION, [900], 500) == c.question_hold_ms
    assert confirm_ms(c, "silence", 0.1, Words.UNKNOWN, [900], 1500) == 0
    assert confirm_ms(c, "closed", None, Words.UNKNOWN, [900], 0) == 0
