"""What `make bench` needs, checked before it starts anything: each missing piece is one line
saying how to get it, not a traceback minutes in. And what it is doing meanwhile: a line on stderr
as each part starts and ends (the whole run takes minutes)."""

import shutil
import sys
import time
from pathlib import Path

from tests.speech import TWO_CITIES

# Programs the benchmark runs, and where they come from (Debian packages: scripts/system-deps.sh).
PROGRAMS = {
    "redis-server": "the benchmark's own Redis: apt-get install redis-server",
    "flite": "the spoken test clips: apt-get install flite (scripts/system-deps.sh test installs it)",
    "espeak-ng": "the default voice of the worker: apt-get install espeak-ng",
    "ffmpeg": "decoding audio in the worker: apt-get install ffmpeg",
}


def missing(worker_python: str) -> list[str]:
    """One line for each thing the benchmark needs and does not find."""
    lines = [f"{name} is not installed ({why})" for name, why in PROGRAMS.items() if shutil.which(name) is None]
    if not Path(worker_python).is_file():
        lines.append(f"the worker's Python {worker_python} is missing: build the environments with `make venvs`")
    try:
        TWO_CITIES.path()  # a real person's reading, streamed through the listener (words_kept)
    except FileNotFoundError as exc:
        lines.append(f"{exc} (`make bench` installs it)")
    return lines


class Progress:
    """`say(what)` as a part starts: the previous part's time, then what comes, on stderr."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.part: tuple[str, float] | None = None

    def __call__(self, what: str) -> None:
        now = time.monotonic()
        if self.part is not None:
            print(f"bench: {self.part[0]}: done in {now - self.part[1]:.0f} s", file=sys.stderr, flush=True)
        self.part = (what, now)
        print(f"bench: {what} ...", file=sys.stderr, flush=True)

    def finished(self) -> None:
        self("all done")
        print(f"bench: took {time.monotonic() - self.began:.0f} s in all", file=sys.stderr, flush=True)
        self.part = None
