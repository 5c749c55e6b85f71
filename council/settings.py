"""The council's settings, built once from the environment and passed down.

Each field reads `COUNCIL_<FIELD>` unless it names its own variable (the LLM servers' usual ones:
`OLLAMA_BASE_URL`, `OPENAI_BASE_URL`, `OPENAI_API_KEY`, and `TIGERGRAPH_*`).
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from .errors import ConfigError

DEFAULT_MEMBERS_FILE = Path(__file__).with_name("members.toml")
DEFAULT_PRICES_FILE = Path(__file__).with_name("prices.toml")


@dataclass(frozen=True)
class CouncilSettings:
    members_file: Path = DEFAULT_MEMBERS_FILE
    # LLM servers: members pick a provider in the members file; these say where each one is.
    ollama_base_url: str = field(default="http://127.0.0.1:11434", metadata={"env": "OLLAMA_BASE_URL"})
    openai_base_url: str = field(default="https://api.openai.com/v1", metadata={"env": "OPENAI_BASE_URL"})
    openai_api_key: str | None = field(default=None, metadata={"env": "OPENAI_API_KEY"})
    llm_retries: int = 1
    # Time limits, in seconds: a member answering, critiquing, the chair, the router, `check()`.
    member_timeout_s: float = 60.0
    critique_timeout_s: float = 30.0
    chair_timeout_s: float = 90.0
    router_timeout_s: float = 5.0
    check_timeout_s: float = 2.0
    # Deliberation: a critique round, and whether members' answers are spoken (per call too).
    critique: bool = True
    hear_members: bool = False
    # Which TTS engine's voice a member speaks in: the first of these it has one for. espeak-ng
    # first: its first audio comes ~70 ms sooner on a CPU than Piper's (see README, Benchmarks);
    # "piper,espeak" gives the chair Piper's more natural voice.
    tts_engines: tuple[str, ...] = ("espeak", "piper")
    # Memory: turns kept per session, how much of it members read (tokens ~ chars / 4), how long.
    history_turns: int = 50
    history_tokens: int = 2000
    memory_ttl_s: int = 30 * 24 * 3600
    # Signals: recurring topics, decayed per turn and by time; the strongest go into prompts.
    signals_top: int = 5
    signals_turn_decay: float = 0.8
    signals_half_life_s: float = 1800.0
    signals_floor: float = 0.2
    key_prefix: str = "council"
    # Budgets (see budgets.py), each "<amount> <unit>" in tokens, seconds or money, several with
    # commas ("200000 tokens, 2 money"): every user's daily limit and a turn's; a member's daily
    # limit is `daily_budget` in the members file. Empty: no limit, spending is still metered.
    budget_daily: tuple[str, ...] = ()
    budget_turn: tuple[str, ...] = ()
    prices_file: Path = DEFAULT_PRICES_FILE
    # Users who may read everyone's usage and the whole ledger: by default the one user of a
    # server without tokens ("anonymous") or with the one COUNCIL_API_TOKEN ("default").
    operators: tuple[str, ...] = ("anonymous", "default")
    # Tools members may call (see tools.py): rounds of tool calls per answer, time per call, and
    # the HTTP tool, off unless turned on, to hosts on its allow-list only.
    tool_rounds: int = 3
    tool_timeout_s: float = 10.0
    tools_http: bool = False
    tools_http_allow: tuple[str, ...] = ()
    # TigerGraph: when a host is given, turns and topics are also written there.
    tigergraph_host: str | None = field(default=None, metadata={"env": "TIGERGRAPH_HOST"})
    tigergraph_graph: str = field(default="council", metadata={"env": "TIGERGRAPH_GRAPH"})
    tigergraph_username: str = field(default="tigergraph", metadata={"env": "TIGERGRAPH_USERNAME"})
    tigergraph_password: str | None = field(default=None, metadata={"env": "TIGERGRAPH_PASSWORD"})
    tigergraph_token: str | None = field(default=None, metadata={"env": "TIGERGRAPH_TOKEN"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata.get("env", f"COUNCIL_{f.name.upper()}")
            raw = environ.get(name)
            if raw is None or (raw == "" and f.default is None):
                continue
            values[f.name] = _parse(name, f.default, raw)
        return cls(**values)

    @property
    def tigergraph(self) -> bool:
        return bool(self.tigergraph_host)

    def base_url(self, provider: str) -> str:
        return self.ollama_base_url if provider == "ollama" else self.openai_base_url


KINDS = {bool: "true or false", int: "an integer", float: "a number"}


def _parse(name: str, default: Any, raw: str) -> Any:
    try:
        match default:
            case bool():
                if raw.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                return raw.strip().lower() in ("1", "true", "yes", "on")
            case int():
                return int(raw)
            case float():
                return float(raw)
            case Path():
                return Path(raw)
            case tuple():
                return tuple(part.strip() for part in raw.split(",") if part.strip())
            case _:
                return raw
    except ValueError:
        raise ConfigError(f"{name} must be {KINDS[type(default)]}, got {raw!r}") from None
