"""A transcript as a file: plain text, SubRip (SRT), WebVTT or JSON. Pure functions, no I/O.

Subtitle cues (SRT, WebVTT) are made as subtitlers make them: subtitles.py.
"""

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, get_args
from urllib.parse import quote

from shared_schemas import Transcript

from .subtitles import Cue, subtitle_cues

Format = Literal["json", "txt", "srt", "vtt"]
FORMATS: Final[tuple[Format, ...]] = get_args(Format)
MEDIA_TYPES: Final[dict[str, str]] = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def as_transcript(value: Transcript | Mapping[str, Any]) -> Transcript:
    return value if isinstance(value, Transcript) else Transcript.model_validate(value)


def timestamp(seconds: float, separator: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT) or, with separator ".", `HH:MM:SS.mmm` (WebVTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def cues(transcript: Transcript | Mapping[str, Any]) -> list[Cue]:
    """Subtitle cues in time order (subtitles.py): at most two lines each, joined by a newline."""
    return subtitle_cues(as_transcript(transcript))  # (it splits words on any whitespace itself)


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
