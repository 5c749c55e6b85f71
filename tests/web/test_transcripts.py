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


def test_a_long_segment_splits_at_word_boundaries_with_word_times():
    words = [Word(text=f" word{i}", start=i * 0.5, end=i * 0.5 + 0.4) for i in range(40)]
    text = " ".join(w.text.strip() for w in words)
    t = transcript(text=text, segments=[Segment(text=text, start=0, end=20, words=words)])
    found = cues(t, max_chars=40, max_seconds=7.0)
    assert len(found) > 1
    assert " ".join(c.text for c in found) == text  # nothing lost, no word cut
    assert all(len(c.text) <= 40 and c.end - c.start <= 7.0 for c in found)
    assert found[0].start == 0 and found[-1].end == pytest.approx(19.9)
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))
    srt = to_srt(t)
    assert len(re.findall(rf"^{SRT_TIME} --> {SRT_TIME}$", srt, re.M)) == len(cues(t)) == 4


def test_a_long_segment_without_words_stays_whole():
    text = "x " * 100
    assert len(cues(transcript(segments=[Segment(text=text, start=0, end=30)]))) == 1


def test_no_segments_is_one_cue_and_no_text_is_no_cue():
    only = cues(transcript(segments=[]))
    assert [(c.start, c.end, c.text) for c in only] == [(0.0, 4.2, "Hello there. The council will now meet.")]
    empty = transcript(text="", segments=[])
    assert to_srt(empty) == "" and to_vtt(empty) == "WEBVTT\n" and to_txt(empty) == ""


def test_blank_lines_inside_text_cannot_break_a_cue():
    srt = to_srt(transcript(segments=[Segment(text="one\n\ntwo", start=0, end=1)]))
    assert srt == "1\n00:00:00,000 --> 00:00:01,000\none two\n"
