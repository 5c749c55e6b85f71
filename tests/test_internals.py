"""docs/internals.md lists every private name of a dependency that our code uses: a grep of the
packages finds each one (`x._name`, and `self._name` inherited from a library class: names our code
never defines), and every name the list gives is still used."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("web", "queues", "voice_worker", "council", "billing", "shared_schemas")
DOC = ROOT / "docs" / "internals.md"
# Documented public API despite the underscore.
PUBLIC = {"_replace", "_asdict", "_fields", "_make"}


def _code(path: Path) -> str:
    """The file without comments and import lines."""
    lines = (line.split("#")[0] for line in path.read_text(encoding="utf-8").splitlines())
    return "\n".join(line for line in lines if not re.match(r"\s*(from|import)\s", line))


def reaches(text: str) -> list[tuple[str, str]]:
    """(receiver, name) of each private attribute a piece of code uses: `x._name`, `getattr(x, "_name")`."""
    found = re.findall(r"(?<![\w.])([A-Za-z_]\w*)\.(_[a-z]\w*)", text)
    return found + re.findall(r"\b(?:get|set|has)attr\(\s*(\w+)\s*,\s*[\"'](_[a-z]\w*)[\"']", text)


def _assigned(text: str) -> set[str]:
    attributes = re.findall(r"\bself\.(_[a-z]\w*)\s*(?::[^=\n]*)?=(?!=)", text)
    return set(attributes) | set(re.findall(r"^\s*(_[a-z]\w*)\s*(?::[^=\n]*)?=(?!=)", text, re.M))


def private_names_used() -> dict[str, set[str]]:
    """Private names used in our packages that our code does not define, with where: `x._name`
    that no package defines, and `self._name` that neither a method of ours nor the same file
    defines (inherited from a library class)."""
    files = {path: _code(path) for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}
    defined = {name for text in files.values() for name in re.findall(r"\bdef (_[a-z]\w*)", text)}
    assigned = {name for text in files.values() for name in _assigned(text)}
    used: dict[str, set[str]] = {}
    for path, text in files.items():
        ours = defined | _assigned(text)
        for receiver, name in set(reaches(text)):
            if name in PUBLIC or name in ours or (receiver != "self" and name in assigned):
                continue
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return used


def private_names_listed() -> set[str]:
    section = DOC.read_text(encoding="utf-8").split("## Private names we use", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"\.(_[a-z]\w*)`", row.split("|")[1])}


def test_every_private_name_the_code_uses_is_listed_and_every_listed_one_is_used():
    used, listed = private_names_used(), private_names_listed()
    unlisted = {name: sorted(where) for name, where in used.items() if name not in listed}
    assert not unlisted, f"private names of dependencies used but not in docs/internals.md: {unlisted}"
    assert not listed - set(used), f"docs/internals.md lists names no code uses any more: {sorted(listed - set(used))}"


def test_the_grep_finds_what_it_must():
    code = 'fetched = Queue._fetch_dequeued_job(c, k, j)\nif state == getattr(self, "_state", None):\n'
    assert reaches(code) == [("Queue", "_fetch_dequeued_job"), ("self", "_state")]
    assert reaches("self.queue_class.from_queue_key(k)\nparts._replace(netloc=n)\n") == [("parts", "_replace")]
