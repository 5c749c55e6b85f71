"""Rendering transcripts as files: pure functions, no server."""

import json
import re

import pytest

from shared_schemas import Segment, Transcript, Word
from web.transcripts import FORMATS, MEDIA_TYPES, cues, render, timestamp, to_json, to_srt, to_txt, to_vtt

SRT_TIME = r"\d{2}:\d{2}:\d{2},\d{3}"
VTT_TIME = r"\d{2}:\d{2}:\d{2}\.\d{3}"


def transcript(**fields) -> Transcript:
    base = {
        "text": "Hello there. The council will now meet.",
        "language": "en",
        "duration_s": 4.2,
        "engine": "test",
        "segments": [
            Segment(text=" Hello there.", start=0.0, end=1.25),
            Segment(text=" The council will now meet.", start=1.5, end=4.0),
        ],
    }
    return Transcript(**{**base, **fields})


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0, "00:00:00,000", "00:00:00.000"),
        (1.2345, "00:00:01,234", "00:00:01.234"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (3723.5, "01:02:03,500", "01:02:03.500"),
        (-0.5, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_timestamps(seconds, srt, vtt):
    assert timestamp(seconds) == srt
    assert timestamp(seconds, ".") == vtt


def test_srt_numbers_its_cues_with_comma_times():
    assert to_srt(transcript()) == (
        "1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n"
        "2\n00:00:01,500 --> 00:00:04,000\nThe council will now meet.\n"
    )


def test_vtt_has_its_header_dot_times_and_escapes_markup():
    vtt = to_vtt(transcript(segments=[Segment(text="a <b> & c", start=0, end=1)]))
    assert vtt == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na &lt;b&gt; &amp; c\n"


def test_txt_and_json():
    assert to_txt(transcript()) == "Hello there. The council will now meet.\n"
    body = json.loads(to_json(transcript()))
    assert body["text"] == "Hello there. The council will now meet."
    assert [(s["start"], s["end"]) for s in body["segments"]] == [(0.0, 1.25), (1.5, 4.0)]


def test_a_dict_renders_like_the_model():
    model = transcript()
    for fmt in FORMATS:
        assert render(model.model_dump(mode="json"), fmt) == render(model, fmt)
        assert render(model, fmt)[1] == MEDIA_TYPES[fmt]


def test_unknown_format_raises():
    with pytest.raises(ValueError, match="unknown transcript format"):
        render(transcript(), "docx")


def timed(text: str, start: float = 0.0, per_word: float = 0.4, gap: float = 0.05) -> list[Word]:
    """`text`'s words, one every `per_word` seconds, each lasting `per_word - gap`."""
    return [
        Word(text=w, start=start + n * per_word, end=start + (n + 1) * per_word - gap)
        for n, w in enumerate(text.split())
    ]


def read_aloud(*segments: str, per_word: float = 0.4) -> Transcript:
    """A transcript whose segments are `segments`, read one after another at a steady pace."""
    made, at = [], 0.0
    for text in segments:
        words = timed(text, at, per_word)
        made.append(Segment(text=text, start=words[0].start, end=words[-1].end, words=words))
        at = words[-1].end + 0.05
    return transcript(text=" ".join(segments), duration_s=at, segments=made)


def assert_good_cues(found) -> None:
    """What subtitlers require of every cue."""
    for cue in found:
        lines = cue.text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines), cue
        assert cue.end - cue.start <= 7.0, cue
        assert len(cue.text.split()) > 1, f"a one-word cue: {cue}"
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))
    for a, b in zip(found, found[1:], strict=False):  # at least 1 s, unless the next cue comes first
        assert a.end - a.start >= 1.0 or a.end == b.start, (a, b)


def test_a_long_segment_splits_at_word_boundaries_with_word_times():
    words = [Word(text=f" word{i}", start=i * 0.5, end=i * 0.5 + 0.4) for i in range(40)]
    text = " ".join(w.text.strip() for w in words)
    t = transcript(text=text, segments=[Segment(text=text, start=0, end=20, words=words)])
    found = cues(t)
    assert len(found) > 1
    assert " ".join(c.text.replace("\n", " ") for c in found) == text  # nothing lost, no word cut
    assert_good_cues(found)
    assert found[0].start == 0 and found[-1].end == pytest.approx(19.9)
    srt = to_srt(t)
    assert len(re.findall(rf"^{SRT_TIME} --> {SRT_TIME}$", srt, re.M)) == len(found)


def test_a_long_segment_without_word_times_is_cut_by_estimated_ones():
    text = " ".join(["word"] * 100)
    found = cues(transcript(text=text, segments=[Segment(text=text, start=0, end=30)]))
    assert len(found) > 1 and " ".join(c.text.replace("\n", " ") for c in found) == text
    assert_good_cues(found)
    assert found[0].start == 0 and found[-1].end == 30


def test_cues_end_at_sentences_and_clauses_not_where_a_segment_did():
    # Whisper's segments end mid-clause; the issue saw "...the age of wisdom, it / was the age of".
    t = read_aloud(
        "It was the best of times, it was the worst of times, it was the age of wisdom, it",
        "was the age of foolishness. We had everything before us, we had nothing before us.",
    )
    found = cues(t)
    assert_good_cues(found)
    assert [c.text for c in found] == [
        "It was the best of times,\nit was the worst of times,",
        "it was the age of wisdom,\nit was the age of foolishness.",
        "We had everything before us,\nwe had nothing before us.",
    ]


def test_what_a_clause_break_leaves_is_cut_again_when_it_cannot_take_the_next_word():
    t = read_aloud(
        "In short, the period was so far like the present period that some of its noisiest authorities "
        "insisted on its being received for good or for evil"
    )
    found = cues(t)
    assert_good_cues(found)
    assert found[0].text.startswith("In short,")


def test_a_word_alone_joins_a_neighbour():
    t = read_aloud("Yes.", "The council will now meet in the hall.")
    assert [c.text.replace("\n", " ") for c in cues(t)] == ["Yes. The council will now meet in the hall."]
    # A word left over at the end of a full cue takes the previous cue's last word with it.
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    found = cues(read_aloud(long + " end", per_word=0.43))
    assert_good_cues(found)
    assert " ".join(c.text.replace("\n", " ") for c in found) == long + " end"


def test_a_short_cue_lasts_a_second_into_the_silence_after_it():
    t = transcript(
        text="Hello there. Welcome back.",
        segments=[
            Segment(text="Hello there.", start=0.0, end=0.5, words=timed("Hello there.", 0.0, 0.25)),
            Segment(text="Welcome back.", start=3.0, end=3.5, words=timed("Welcome back.", 3.0, 0.25)),
        ],
    )
    found = cues(t)
    assert [(c.start, c.end) for c in found] == [(0.0, 1.0), (3.0, 4.0)]
    close = transcript(
        text="Hello there. Welcome back.",
        segments=[
            Segment(text="Hello there.", start=0.0, end=0.5, words=timed("Hello there.", 0.0, 0.25)),
            Segment(text="Welcome back.", start=0.7, end=1.2, words=timed("Welcome back.", 0.7, 0.25)),
        ],
    )
    assert [(c.start, c.end) for c in cues(close)] == [(0.0, 0.7), (0.7, 1.7)]  # never over the next


def test_two_lines_break_after_punctuation_else_evenly():
    from web.subtitles import lines

    assert lines("It was the best of times, it was the worst of times.") == [
        "It was the best of times,",
        "it was the worst of times.",
    ]
    assert lines("a" * 10) == ["a" * 10]
    two = lines("the period was so far like the present period that some of")
    assert len(two) == 2 and all(len(line) <= 42 for line in two) and abs(len(two[0]) - len(two[1])) <= 6


def test_no_segments_is_the_text_over_the_whole_audio_and_no_text_is_no_cue():
    only = cues(transcript(segments=[]))
    assert [c.text for c in only] == ["Hello there.", "The council will now meet."]  # a sentence each
    assert only[0].start == 0.0 and only[-1].end == 4.2 and only[0].end == only[1].start
    empty = transcript(text="", segments=[])
    assert to_srt(empty) == "" and to_vtt(empty) == "WEBVTT\n" and to_txt(empty) == ""


def test_blank_lines_inside_text_cannot_break_a_cue():
    srt = to_srt(transcript(segments=[Segment(text="one\n\ntwo", start=0, end=1)]))
    assert srt == "1\n00:00:00,000 --> 00:00:01,000\none two\n"
