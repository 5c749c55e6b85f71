"""Where turns start and end, on made-up VAD probabilities (no model): the endpointer is pure."""

from voice_worker.listening.endpointer import (
    AskTurn,
    Endpointer,
    EndpointSettings,
    Recognize,
    SpeechStarted,
    SpeechStopped,
    TurnEnded,
)

S = EndpointSettings()
W = S.window_ms


def feed(endpointer: Endpointer, pattern: list[tuple[float, float]], turn_model: float | None = None) -> list:
    """Feed (probability, milliseconds) runs; answer every AskTurn with `turn_model`. All actions."""
    actions = []
    for probability, ms in pattern:
        for _ in range(round(ms / W)):
            for action in endpointer.window(probability):
                actions.append(action)
                if isinstance(action, AskTurn) and turn_model is not None:
                    actions.extend(endpointer.turn_model(turn_model))
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
