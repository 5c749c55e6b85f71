"""Telling the person's words from the answer's own echo (web/echo.py), with a clock we move."""

import pytest

from web.echo import TAIL_S, Echo, Verdict

ANSWER = ["The library opens at nine on weekdays.", "On Sundays it stays closed all day."]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def echo(clock) -> Echo:
    e = Echo(clock)
    for i, text in enumerate(ANSWER):
        e.said("turn-a", i, text, duration_s=2.0)
    return e


@pytest.mark.parametrize(
    ("heard", "verdict"),
    [
        ("the library opens at nine on weekdays", Verdict.ECHO),
        ("library opens at nine on week days", Verdict.ECHO),  # a recognizer's spelling
        ("on sundays it stays closed", Verdict.ECHO),
        ("wait, what about the museum", Verdict.PERSON),
        ("stop", Verdict.PERSON),
        ("sundays", Verdict.UNSURE),  # one word, and it is the answer's
        ("sundays really", Verdict.UNSURE),
        ("no I mean on sundays it stays", Verdict.UNSURE),
    ],
)
def test_words_are_judged_against_what_is_being_said(echo, heard, verdict):
    assert echo.judge(heard) is verdict


def test_the_order_of_the_words_counts(echo):
    assert echo.judge("weekdays on nine at opens library the") is not Verdict.ECHO


def test_an_answer_sounds_while_it_plays_and_a_little_after(echo, clock):
    assert echo.sounding() == "turn-a"
    clock.now += 1.0
    echo.played("turn-a", done=True)
    clock.now += TAIL_S - 0.1
    assert echo.sounding() == "turn-a"  # the room and the listener lag behind
    clock.now += 0.2
    assert echo.sounding() is None


def test_a_page_that_never_reports_stops_sounding_after_its_clips_length(echo, clock):
    clock.now += 4.0 + 1.0
    assert echo.sounding() == "turn-a"
    clock.now += 10.0
    assert echo.sounding() is None


def test_a_stopped_answer_is_silent_at_once_and_says_nothing_more(echo):
    echo.stopped("turn-a")
    assert echo.sounding() is None
    echo.said("turn-a", 2, "A clip already on its way.", 1.0)
    assert echo.sounding() is None


def test_with_nothing_said_every_word_is_the_person(clock):
    assert Echo(clock).judge("hello there") is Verdict.PERSON
    assert Echo(clock).sounding() is None
