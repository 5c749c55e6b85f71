"""Who sits on the council: members and their chair, loaded from one TOML file.

```toml
[defaults]                # any member field, for every member that does not set it
provider = "worker"       # "worker" (a model the council's workers serve: "builtin" is the small
model = "builtin"         # SmolLM2-135M), "ollama" or "openai" (any OpenAI-compatible server)

[[members]]
name = "Ada"
role = "analyst"
persona = "You are Ada, ..."            # the member's system prompt
voices = { espeak = "ada" }             # a voice per TTS engine
# base_url = "http://gpu-box:11434"     # this member's server, instead of the provider's

[[members]]
name = "Max"
role = "chair"
chair = true                            # exactly one: weighs the answers, writes the final one
fast = true                             # answers simple requests alone (default: the chair)
persona = "..."
provider = "ollama"                     # this member on an LLM server, the others on the workers
model = "llama3.2"
voices = { piper = "joe", espeak = "max" }
tool_level = "read"                     # tools it may call: none, read (calculator, clock,
                                        # memory_search) or network (also http_get); a "worker"
                                        # member's model calls none
daily_budget = { tokens = 200000 }      # what it may spend a day, all users together
max_output_tokens = 512                 # the longest answer it may write in one call
```
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

Provider = Literal["worker", "ollama", "openai"]
ToolLevel = Literal["none", "read", "network"]
TOOL_LEVELS: tuple[ToolLevel, ...] = ("none", "read", "network")


class Member(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    role: str = Field(min_length=1)
    persona: str = Field(min_length=1)
    provider: Provider
    model: str = Field(min_length=1)
    base_url: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    voices: dict[str, str] = Field(min_length=1)
    chair: bool = False
    fast: bool = False
    tool_level: ToolLevel = "none"
    daily_budget: dict[Literal["tokens", "seconds", "money"], float] | None = None
    max_output_tokens: int = Field(default=512, ge=1, le=200_000)

    @model_validator(mode="after")
    def _tools_need_a_server(self) -> "Member":
        if self.provider == "worker" and self.tool_level != "none":
            raise ValueError(
                'the worker provider\'s models do not call tools: set tool_level = "none" '
                "(or use an ollama or openai provider for tools)"
            )
        return self

    @field_validator("daily_budget")
    @classmethod
    def _positive(cls, budget: dict[str, float] | None) -> dict[str, float] | None:
        if budget is not None and any(v < 0 for v in budget.values()):
            raise ValueError("budget amounts must be 0 or more")
        return budget

    def may_use(self, level: ToolLevel) -> bool:
        """Whether this member's tool level allows a tool that needs `level`."""
        return TOOL_LEVELS.index(self.tool_level) >= TOOL_LEVELS.index(level)

    def voice(self, engines: tuple[str, ...], fallback: str) -> str:
        """This member's voice on the first engine in `engines` it has one for, else `fallback`."""
        return next((self.voices[e] for e in engines if e in self.voices), fallback)


@dataclass(frozen=True)
class Council:
    members: tuple[Member, ...]  # those who answer and critique, in order
    chair: Member
    fast: Member  # who answers a simple request alone

    @property
    def everyone(self) -> tuple[Member, ...]:
        return (*self.members, self.chair)

    def __getitem__(self, name: str) -> Member:
        return next(m for m in self.everyone if m.name == name)


def load(path: Path) -> Council:
    """The council described in `path`; `ConfigError` names the file and what is wrong in it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"members file {path} does not exist (set COUNCIL_MEMBERS_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"members file {path} is not valid TOML: {exc}") from None
    return parse(data, source=str(path))


def parse(data: dict[str, Any], source: str = "members") -> Council:
    extra = set(data) - {"defaults", "members"}
    if extra:
        raise ConfigError(f"{source}: unknown table {sorted(extra)}; expected [defaults] and [[members]]")
    defaults = data.get("defaults", {})
    entries = data.get("members", [])
    if not isinstance(defaults, dict) or not isinstance(entries, list):
        raise ConfigError(f"{source}: [defaults] must be a table and [[members]] an array of tables")
    members = [_member(source, i, defaults, entry) for i, entry in enumerate(entries)]
    return _council(source, members)


def _member(source: str, index: int, defaults: dict[str, Any], entry: Any) -> Member:
    if not isinstance(entry, dict):
        raise ConfigError(f"{source}: members[{index}] must be a table")
    try:
        return Member.model_validate({**defaults, **entry})
    except ValidationError as exc:
        who = entry.get("name", f"members[{index}]")
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'member'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: member {who!r}: {problems}") from None


def _council(source: str, members: list[Member]) -> Council:
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: member names must be distinct, got {names}")
    chairs = [m for m in members if m.chair]
    if len(chairs) != 1:
        raise ConfigError(f"{source}: exactly one member must have chair = true, found {len(chairs)}")
    answering = tuple(m for m in members if not m.chair)
    if not answering:
        raise ConfigError(f"{source}: the council needs at least one member besides the chair")
    fast = [m for m in members if m.fast]
    if len(fast) > 1:
        raise ConfigError(f"{source}: at most one member may have fast = true, found {[m.name for m in fast]}")
    seen: dict[tuple[str, str], str] = {}
    for m in members:
        for engine, voice in m.voices.items():
            other = seen.setdefault((engine, voice), m.name)
            if other != m.name:
                raise ConfigError(f"{source}: {m.name} and {other} share the {engine} voice {voice!r}")
    return Council(members=answering, chair=chairs[0], fast=fast[0] if fast else chairs[0])
