"""The members file: the default council, and clear messages when a file is wrong."""

from pathlib import Path

import pytest

from council import ConfigError
from council.members import load

CPU_VOICES = {"joe", "max", "ada", "iris", "angus", "leon"}


def test_the_default_council(council):
    assert [(m.name, m.role) for m in council.members] == [
        ("Ada", "analyst"),
        ("Iris", "creative"),
        ("Angus", "skeptic"),
    ]
    assert (council.chair.name, council.chair.role, council.fast.name) == ("Max", "chair", "Max")
    voices = [m.voice(("piper", "espeak"), "leon") for m in council.everyone]
    assert voices == ["ada", "iris", "angus", "joe"]
    assert len(set(voices)) == 4 and set(voices) <= CPU_VOICES
    assert [m.voice(("espeak",), "leon") for m in council.everyone] == ["ada", "iris", "angus", "max"]
    assert council.members[0].voice(("coqui",), "leon") == "leon"  # no voice on that engine: the fallback
    assert all(m.provider == "ollama" and m.model and m.persona for m in council.everyone)


def test_out_of_the_box_the_council_is_the_built_in_model_with_the_same_members(council):
    """members.toml: the same people and voices as on Ollama, each on the workers' small model,
    short answers and no tools; members-ollama.toml (the `council` fixture) is the same council."""
    from council import DEFAULT_MEMBERS_FILE

    builtin = load(DEFAULT_MEMBERS_FILE)
    assert [(m.name, m.role, m.voices, m.persona) for m in builtin.everyone] == [
        (m.name, m.role, m.voices, m.persona) for m in council.everyone
    ]
    assert {(m.provider, m.model, m.tool_level) for m in builtin.everyone} == {("worker", "builtin", "none")}
    assert all(m.max_output_tokens <= 64 for m in builtin.everyone)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "members.toml"
    path.write_text(text)
    return path


MEMBER = """
[[members]]
name = "{name}"
role = "{role}"
persona = "You are {name}."
provider = "ollama"
model = "llama3.2"
voices = {{ espeak = "{voice}" }}
"""


def members(*specs: tuple[str, str, str], extra: str = "") -> str:
    text = "".join(MEMBER.format(name=n, role=r, voice=v) for n, r, v in specs)
    return text.replace('role = "chair"', 'role = "chair"\nchair = true') + extra


def test_a_small_council_loads(tmp_path):
    council = load(write(tmp_path, members(("Ann", "analyst", "ada"), ("Cy", "chair", "max"))))
    assert [m.name for m in council.members] == ["Ann"] and council.chair.name == "Cy"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[members]\nname = "x"', r"is not valid TOML: .*line 1"),
        (members(("Ann", "analyst", "ada")), "exactly one member must have chair = true, found 0"),
        (members(("Ann", "chair", "ada")), "at least one member besides the chair"),
        (members(("Ann", "analyst", "ada"), ("Ann", "chair", "max")), "names must be distinct"),
        (members(("Ann", "analyst", "ada"), ("Cy", "chair", "ada")), "Cy and Ann share the espeak voice 'ada'"),
        (
            members(("Ann", "analyst", "ada"), ("Cy", "chair", "max")).replace(
                'provider = "ollama"', 'provider = "x"', 1
            ),
            r"member 'Ann': provider: Input should be 'worker', 'ollama' or 'openai'",
        ),
        (
            members(("Ann", "analyst", "ada"), ("Cy", "chair", "max")).replace('model = "llama3.2"\n', "", 1),
            r"member 'Ann': model: Field required",
        ),
        (members(("Ann", "analyst", "ada"), ("Cy", "chair", "max"), extra="\n[council]\nx = 1\n"), "unknown table"),
    ],
)
def test_a_malformed_file_fails_with_a_clear_message(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as failed:
        load(path)
    assert str(path) in str(failed.value)


def test_a_missing_file_says_which_setting_to_change(tmp_path):
    with pytest.raises(ConfigError, match="does not exist \\(set COUNCIL_MEMBERS_FILE\\)"):
        load(tmp_path / "nowhere.toml")
