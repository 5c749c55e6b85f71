"""One error vocabulary: every code the code base can send a client is an `ErrorCode`, has a
meaning, and is listed in web/PROTOCOL.md. The code base is read, not imported: each place a code
is given (an ApiError, a refused frame, an error frame or body, a job's or a file's error, an
OpenAI-shaped error, a `"code": ...` in a dict, a `code = ...` class attribute, a comparison with
`.code`) that holds a string literal must hold one of the vocabulary's."""

import ast
import re
from pathlib import Path

from shared_schemas import ErrorCode
from shared_schemas._errors import MEANING

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("web", "council", "queues", "billing", "voice_worker", "shared_schemas")
# Calls that take a code, and where: the positional place (or only the `code=` keyword).
CALLS = {
    "ApiError": 1,
    "reject": 0,
    "error_frame": 0,
    "error_body": 0,
    "_answer": 1,
    "VoiceError": 0,
    "OpenAIError": None,
    "FileError": None,
    "JobError": None,
}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def emitted() -> dict[str, list[str]]:
    """Each string literal given as an error code, and where."""
    found: dict[str, list[str]] = {}

    def note(node: ast.expr, where: str) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.setdefault(node.value, []).append(where)
        elif isinstance(node, ast.Attribute) and _name(node.value) == "ErrorCode":
            found.setdefault(f"ErrorCode.{node.attr}", []).append(where)

    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Call) and (name := _name(node.func)) in CALLS:
                    place = CALLS[name]
                    if place is not None and len(node.args) > place:
                        note(node.args[place], where)
                    for keyword in node.keywords:
                        if keyword.arg == "code":
                            note(keyword.value, where)
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "code" and value is not None:
                            note(value, where)
                elif isinstance(node, ast.ClassDef):
                    for statement in node.body:
                        if isinstance(statement, ast.Assign) and any(_name(t) == "code" for t in statement.targets):
                            note(statement.value, where)
                elif isinstance(node, ast.Compare) and _name(node.left) == "code":
                    for comparator in node.comparators:
                        note(comparator, where)
    return found


def test_every_code_the_code_base_emits_is_in_the_vocabulary():
    found = emitted()
    assert len(found) >= 30, "the search found almost nothing: has the code moved?"
    literals = {code: places for code, places in found.items() if not code.startswith("ErrorCode.")}
    unknown = {code: places for code, places in literals.items() if code not in set(ErrorCode)}
    assert not unknown, f"codes not in shared_schemas.ErrorCode (add them, with a meaning): {unknown}"
    # And given as the vocabulary's members, not as strings that merely spell one.
    assert not literals, f"use ErrorCode members, not string literals: {literals}"


def test_every_code_has_a_meaning():
    assert set(MEANING) == set(ErrorCode)
    assert all(len(meaning) > 10 for meaning in MEANING.values())


def test_protocol_md_lists_every_code():
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "web/PROTOCOL.md").read_text(), re.MULTILINE))
    missing = sorted(set(ErrorCode) - listed)
    assert not missing, f"web/PROTOCOL.md's error codes table lacks {missing}"
