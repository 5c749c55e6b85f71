"""TextStream: one sequence's tokens as whole-character pieces, stop strings cut, with no model."""

from voice_worker.llm import TextStream


def byte_tokens(text: str) -> list[int]:
    """A byte-level tokenizer's view: one token per UTF-8 byte."""
    return list(text.encode())


def decode(ids) -> str:
    return bytes(ids).decode("utf-8", errors="replace")


def run(stream: TextStream, text: str) -> list[str]:
    return [piece for token in byte_tokens(text) if (piece := stream.push(token))]


def test_a_character_split_across_tokens_goes_out_whole():
    stream = TextStream(decode)
    pieces = run(stream, "né 🎉!")
    assert "".join(pieces) == "né 🎉!" == stream.text == stream.sent
    assert not any("\ufffd" in piece for piece in pieces)
    assert "🎉" in pieces  # its four tokens make one piece, when the last one comes


def test_a_stop_string_ends_the_text_before_it_and_nothing_after_goes_out():
    stream = TextStream(decode, stop=("\nUser:",))
    pieces = run(stream, "Paris.\nUser: and Rome?")
    assert "".join(pieces) == "Paris." == stream.text
    assert stream.stopped
    assert stream.push(ord("x")) == ""


def test_text_that_may_begin_a_stop_string_waits_and_goes_out_when_it_does_not():
    stream = TextStream(decode, stop=("STOP",))
    assert run(stream, "a ST") == ["a", " "]  # "ST" might begin STOP: held
    assert run(stream, "ar") == ["STa", "r"]
    assert stream.flush() == "" and not stream.stopped


def test_flush_lets_out_what_was_held_when_the_sequence_ends_another_way():
    stream = TextStream(decode, stop=("STOP",))
    assert "".join(run(stream, "end ST")) == "end "
    assert stream.flush() == "ST"
    assert stream.sent == "end ST"


def test_an_unfinished_character_at_the_end_is_never_sent():
    stream = TextStream(decode)
    run(stream, "ok")
    assert stream.push("é".encode()[0]) == ""
    assert stream.flush() == "" and stream.sent == "ok"
