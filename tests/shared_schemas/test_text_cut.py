"""Sentences are cut at the synthesis limit: no piece is longer than one job speaks, and every
character asked to be spoken is in some piece (whitespace aside), however the text is punctuated."""

import tempfile
from datetime import timedelta
from pathlib import Path

import hypothesis
from hypothesis import configuration, given
from hypothesis import strategies as st

from shared_schemas import MAX_TEXT_CHARS, SentenceBuffer, split_sentences

configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "council-hypothesis")
PROPERTY = hypothesis.settings(derandomize=True, database=None, deadline=timedelta(seconds=10), max_examples=300)

# Words, and what sits between them: few sentence ends, so long sentences are common.
WORD = st.text(st.sampled_from("abcxyzé3"), min_size=1, max_size=30)
GAP = st.sampled_from([" ", " ", " ", ", ", "; ", "\n", "  ", "", ". ", "! ", ",", "... "])
TEXT = st.lists(st.tuples(WORD, GAP), max_size=120).map(lambda parts: "".join(w + g for w, g in parts))
LIMITS = st.integers(min_value=1, max_value=80)


def squeezed(text: str) -> str:
    return "".join(text.split())


def assert_cut_well(pieces: list[str], text: str, limit: int) -> None:
    assert all(0 < len(piece) <= limit for piece in pieces), [len(p) for p in pieces]
    assert all(piece == piece.strip() for piece in pieces)
    assert squeezed("".join(pieces)) == squeezed(text)


def test_an_unpunctuated_text_four_times_the_limit_is_spoken_whole_in_pieces_that_fit():
    text = " ".join(f"word{i}" for i in range(700))  # 4,000 characters, no punctuation at all
    assert len(text) > 4 * MAX_TEXT_CHARS - 200
    pieces = split_sentences(text)
    assert len(pieces) >= 4
    assert_cut_well(pieces, text, MAX_TEXT_CHARS)
    assert all(piece.startswith("word") for piece in pieces)  # cut between words, not inside one


def test_a_long_sentence_is_cut_at_a_comma_or_semicolon_before_a_space():
    clause = "and then the council went on talking about it"
    text = ", ".join([clause] * 30) + "; " + " ".join([clause] * 20)
    pieces = split_sentences(text)
    assert_cut_well(pieces, text, MAX_TEXT_CHARS)
    assert pieces[0].endswith(",") and len(pieces[0]) > MAX_TEXT_CHARS // 2


def test_text_with_no_space_is_cut_where_the_limit_falls():
    assert split_sentences("x" * 2500) == ["x" * 1000, "x" * 1000, "x" * 500]


def test_short_sentences_are_untouched():
    assert split_sentences("Hello there. How are you?") == ["Hello there.", "How are you?"]
    assert split_sentences("x" * MAX_TEXT_CHARS) == ["x" * MAX_TEXT_CHARS]


@PROPERTY
@given(TEXT, LIMITS)
def test_split_sentences_keeps_every_character_in_pieces_that_fit(text, limit):
    assert_cut_well(split_sentences(text, limit), text, limit)


@PROPERTY
@given(TEXT, LIMITS, st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_a_streamed_text_comes_out_whole_in_pieces_that_fit(text, limit, sizes):
    assert_cut_well(streamed(SentenceBuffer(limit), text, sizes), text, limit)


@PROPERTY
@given(TEXT, LIMITS, st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_with_the_first_clause_first_a_streamed_text_still_comes_out_whole(text, limit, sizes):
    assert_cut_well(streamed(SentenceBuffer(limit, first_clause=3), text, sizes), text, limit)


def streamed(buffer: SentenceBuffer, text: str, sizes: list[int]) -> list[str]:
    """The pieces `buffer` cuts from `text` fed in chunks of `sizes` (in turn), then flushed."""
    pieces: list[str] = []
    at = 0
    while at < len(text):
        size = sizes[len(pieces) % len(sizes)]
        pieces += buffer.feed(text[at : at + size])
        at += size
    return pieces + buffer.flush()


def test_the_first_clause_of_a_long_first_sentence_goes_out_at_its_comma():
    tokens = ["The", " novel", " Pride", " and", " Prejudice", " is", " by", " Jane", " Austen", ",", " a", " British"]
    tokens += [" author", ".", " She", " wrote", " six", " novels", ",", " all", " loved", "."]
    buffer, out = SentenceBuffer(first_clause=4), []
    for token in tokens:
        out.append(buffer.feed(token))
    # The clause once the word after its comma began; later clauses wait for their sentence's end.
    assert out[10] == ["The novel Pride and Prejudice is by Jane Austen,"] and not any(out[:10])
    assert out[14] == ["a British author."] and not any(out[15:])
    assert buffer.flush() == ["She wrote six novels, all loved."]
    short = SentenceBuffer(first_clause=4)
    assert [short.feed(t) for t in ("Yes", ",", " it", " is", ".", " Go")] == [[], [], [], [], [], ["Yes, it is."]]


def test_a_long_streamed_sentence_goes_out_while_it_grows():
    buffer, out = SentenceBuffer(), []
    for i in range(700):
        out += buffer.feed(f"word{i} ")
    assert len(out) >= 3 and all(len(piece) <= MAX_TEXT_CHARS for piece in out)  # before the stream ends
    assert all(len(piece) <= MAX_TEXT_CHARS for piece in buffer.flush())
