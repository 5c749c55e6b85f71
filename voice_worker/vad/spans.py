"""Cutting long audio into chunks a recognizer takes at once, around the speech a VAD found."""

import math
from collections.abc import Iterable


def split_spans(
    spans: Iterable[tuple[float, float]],
    max_chunk_s: float = 30.0,
    pad_s: float = 0.2,
    *,
    total_s: float,
) -> list[tuple[float, float]]:
    """Chunks of at most `max_chunk_s` covering every span, padded by `pad_s` within [0, total_s].

    Neighbouring spans share a chunk while it stays short enough (the pause between them goes
    with it); a span longer than `max_chunk_s` is cut into equal pieces.
    """
    if max_chunk_s <= 0:
        raise ValueError("max_chunk_s must be positive")
    clamped = ((max(0.0, start - pad_s), min(total_s, end + pad_s)) for start, end in spans)
    padded = sorted((start, end) for start, end in clamped if end > start)
    chunks: list[tuple[float, float]] = []
    for start, end in padded:
        if chunks and start <= chunks[-1][1]:  # overlaps the previous chunk once padded
            start = chunks[-1][1]
            if end <= start:
                continue
        if chunks and end - chunks[-1][0] <= max_chunk_s:
            chunks[-1] = (chunks[-1][0], end)
            continue
        pieces = math.ceil((end - start) / max_chunk_s - 1e-9)
        step = (end - start) / pieces
        chunks.extend((start + i * step, start + (i + 1) * step) for i in range(pieces))
    return chunks
