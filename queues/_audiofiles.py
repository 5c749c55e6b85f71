"""Audio files named on a command line: files as given, folders walked, and what was left out.

Both terminal tools (`python -m queues transcribe`, `python -m web.upload`) take files and
folders. A file named explicitly is sent whatever its extension (the worker decides whether it
decodes); inside a folder, sub-folders are walked and only audio files (by extension) are taken.
Nothing is left out silently: `Found.summary()` names what was skipped, so a person can tell a
folder of `.m4a` files from an empty one.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from shared_schemas import AUDIO_FORMATS

# Names listed in a summary; the rest are counted.
LISTED = 5


@dataclass
class Found:
    # In the order named; each folder's files sorted by path, sub-folders included.
    files: list[Path] = field(default_factory=list)
    # Named, but neither a file nor a folder.
    missing: list[Path] = field(default_factory=list)
    # Inside folders: files that are not audio by their extension.
    skipped: list[Path] = field(default_factory=list)
    # Inside folders: hidden files and folders (`.DS_Store`, `.git/`), not looked into.
    hidden: list[Path] = field(default_factory=list)
    # Folders that could not be listed, with the reason.
    unreadable: list[str] = field(default_factory=list)

    def summary(self) -> str | None:
        """One line about what the folders held besides audio files; None when nothing was left out."""
        parts = []
        if self.skipped:
            names = ", ".join(str(p) for p in self.skipped[:LISTED])
            more = f" and {len(self.skipped) - LISTED} more" if len(self.skipped) > LISTED else ""
            noun = "file that is" if len(self.skipped) == 1 else "files that are"
            parts.append(f"{len(self.skipped)} {noun} not {'/'.join(AUDIO_FORMATS)} ({names}{more})")
        if self.hidden:
            parts.append(f"{len(self.hidden)} hidden (named .*)")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable folders ({'; '.join(self.unreadable[:LISTED])})")
        if not parts:
            return None
        hint = "; name a file to send it anyway" if self.skipped else ""
        return f"skipped {', '.join(parts)}{hint}"


def is_audio(path: Path) -> bool:
    return path.suffix.lower().lstrip(".") in AUDIO_FORMATS


def find_audio(paths: list[Path]) -> Found:
    """The audio files among `paths`, each once: files as named, folders walked (links to folders
    are not followed, so a loop cannot trap the walk)."""
    found = Found()
    for path in paths:
        if path.is_file():
            found.files.append(path)
        elif path.is_dir():
            _walk(path, found)
        else:
            found.missing.append(path)
    found.files = list(dict.fromkeys(found.files))
    return found


def _walk(folder: Path, found: Found) -> None:
    files: list[Path] = []

    def unreadable(error: OSError) -> None:
        found.unreadable.append(f"{error.filename}: {error.strerror}")

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        here = Path(root)
        for name in [d for d in dirs if d.startswith(".")]:
            found.hidden.append(here / name)
            dirs.remove(name)
        dirs.sort()
        for name in names:
            path = here / name
            if name.startswith("."):
                found.hidden.append(path)
            elif is_audio(path) and path.is_file():
                files.append(path)
            else:
                found.skipped.append(path)
    found.files += sorted(files)
    found.skipped.sort()
