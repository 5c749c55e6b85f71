"""How a streaming engine's pieces of one sentence become the chunks a job sends (no model needed)."""

import numpy as np
import pytest

from voice_worker.audio import Audio
from voice_worker.synthesis import chunks

RATE = 1_000


def piece(seconds: float, value: float) -> Audio:
    return Audio(np.full(round(seconds * RATE), value, dtype=np.float32), RATE)


def regrouped(seconds: list[float], min_s: float = 0.5) -> list[tuple[list[float], bool]]:
    """Each chunk as the values of the pieces it holds (piece i is filled with i), and its done flag."""
    out = []
    for audio, done in chunks([piece(s, i) for i, s in enumerate(seconds)], RATE, min_s):
        out.append((sorted(set(audio.samples.tolist()), key=audio.samples.tolist().index), done))
    return out


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        # XTTS-like: each piece goes out as it comes; a short end goes out alone, as the last chunk.
        ([0.8, 0.85, 0.1], [([0], False), ([1], False), ([2], True)]),
        # Tiny pieces join until they make half a second.
        ([0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2], [([0, 1, 2], False), ([3, 4, 5], False), ([6], True)]),
        ([0.8, 0.1, 0.1], [([0], False), ([1, 2], True)]),
        # A sentence shorter than a chunk is one chunk.
        ([0.3], [([0], True)]),
        ([0.1, 0.1], [([0, 1], True)]),
    ],
)
def test_pieces_regroup_into_chunks(pieces, expected):
    assert regrouped(pieces) == expected


def test_when_the_last_piece_went_out_alone_an_empty_chunk_closes_the_sentence():
    out = list(chunks([piece(0.8, 0.0), piece(0.6, 1.0)], RATE, 0.5))
    assert [(a.duration_s, done) for a, done in out] == [(0.8, False), (0.6, False), (0.0, True)]
    assert out[2][0].sample_rate == RATE and out[2][0].samples.dtype == np.float32


def test_nothing_spoken_is_one_empty_chunk():
    assert [(a.duration_s, done) for a, done in chunks([], RATE)] == [(0.0, True)]


def test_each_chunk_goes_out_before_the_next_piece_is_asked_for():
    asked = []

    def engine():
        for i, seconds in enumerate([0.8, 0.3, 0.3, 0.8]):
            asked.append(i)
            yield piece(seconds, i)

    stream = chunks(engine(), RATE, 0.5)
    assert next(stream)[0].duration_s == 0.8 and asked == [0]
    assert next(stream)[0].duration_s == 0.6 and asked == [0, 1, 2]
    assert next(stream)[0].duration_s == 0.8 and asked == [0, 1, 2, 3]
    assert [done for _, done in stream] == [True]


def test_pieces_at_another_rate_are_refused():
    with pytest.raises(ValueError, match="rate"):
        list(chunks([Audio(np.zeros(800, dtype=np.float32), 800)], RATE, 0.5))
