"""A transcript as a file: plain text, SubRip (SRT), WebVTT or JSON. Pure functions, no I/O.

Subtitle cues follow the transcript's segments; a segment too long to read at once is cut into
several cues at word boundaries when the engine gave word timings (otherwise it stays whole).
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args
from urllib.parse import quote

from shared_schemas import Segment, Transcript, Word

Format = Literal["json", "txt", "srt", "vtt"]
FORMATS: Final[tuple[Format, ...]] = get_args(Format)
MEDIA_TYPES: Final[dict[str, str]] = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
# What one subtitle cue may hold before a segment is cut (about two lines, read in time).
MAX_CUE_CHARS: Final = 84
MAX_CUE_SECONDS: Final = 7.0

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def as_transcript(value: Transcript | Mapping[str, Any]) -> Transcript:
    return value if isinstance(value, Transcript) else Transcript.model_validate(value)


def timestamp(seconds: float, separator: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT) or, with separator ".", `HH:MM:SS.mmm` (WebVTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _clean(text: str) -> str:
    """One line of text: a blank line inside a cue would end it early."""
    return _SPACE.sub(" ", text).strip()


def _split_words(words: list[Word], max_chars: int, max_seconds: float) -> list[Cue]:
    cues: list[Cue] = []
    group: list[Word] = []

    def close() -> None:
        text = _clean(" ".join(w.text.strip() for w in group))
        if text:
            cues.append(Cue(group[0].start, max(group[-1].end, group[0].start), text))
        group.clear()

    for word in words:
        if group:
            chars = len(" ".join(w.text.strip() for w in [*group, word]))
            if chars > max_chars or word.end - group[0].start > max_seconds:
                close()
        group.append(word)
    if group:
        close()
    return cues


def _segment_cues(segment: Segment, max_chars: int, max_seconds: float) -> list[Cue]:
    text = _clean(segment.text)
    long = len(text) > max_chars or segment.end - segment.start > max_seconds
    if long and segment.words:
        return _split_words(segment.words, max_chars, max_seconds)
    return [Cue(segment.start, max(segment.end, segment.start), text)] if text else []


def cues(
    transcript: Transcript | Mapping[str, Any],
    max_chars: int = MAX_CUE_CHARS,
    max_seconds: float = MAX_CUE_SECONDS,
) -> list[Cue]:
    """Subtitle cues in time order. A transcript without segments is one cue over the whole audio."""
    t = as_transcript(transcript)
    if not t.segments:
        text = _clean(t.text)
        return [Cue(0.0, t.duration_s, text)] if text else []
    found: list[Cue] = []
    for segment in sorted(t.segments, key=lambda s: s.start):
        found.extend(_segment_cues(segment, max_chars, max_seconds))
    return found


def to_txt(transcript: Transcript | Mapping[str, Any]) -> str:
    text = as_transcript(transcript).text.strip()
    return f"{text}\n" if text else ""


def to_srt(transcript: Transcript | Mapping[str, Any]) -> str:
    blocks = [
        f"{n}\n{timestamp(c.start)} --> {timestamp(c.end)}\n{c.text}\n" for n, c in enumerate(cues(transcript), 1)
    ]
    return "\n".join(blocks)


def _vtt_text(text: str) -> str:
    # Cue text is HTML-like in WebVTT, and "-->" may not appear in it.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: Transcript | Mapping[str, Any]) -> str:
    blocks = [f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n{_vtt_text(c.text)}\n" for c in cues(transcript)]
    return "\n".join(["WEBVTT\n", *blocks])


def to_json(transcript: Transcript | Mapping[str, Any]) -> str:
    return json.dumps(as_transcript(transcript).model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"


RENDERERS: Final[dict[str, Callable[[Transcript | Mapping[str, Any]], str]]] = {
    "json": to_json,
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
}


def render(transcript: Transcript | Mapping[str, Any], fmt: str) -> tuple[str, str]:
    """The transcript as `fmt`: (body, media type). Raises ValueError for an unknown format."""
    if fmt not in RENDERERS:
        raise ValueError(f"unknown transcript format {fmt!r}; formats: {', '.join(FORMATS)}")
    return RENDERERS[fmt](transcript), MEDIA_TYPES[fmt]


def content_disposition(upload_name: str, fmt: str) -> str:
    """A download named after the uploaded file, its extension replaced: `memo.wav` -> `memo.srt`."""
    name = f"{upload_name.rpartition('.')[0] or upload_name}.{fmt}"
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
