"""The council's settings, a section of the app's (`web.settings.AppSettings`), built once from the
environment and passed down.

Each field reads `COUNCIL_<FIELD>` unless it names its own variable (the LLM servers' usual ones:
`OLLAMA_BASE_URL`, `OPENAI_BASE_URL`, `OPENAI_API_KEY`, and `TIGERGRAPH_*`); the rules for every
variable are `queues.settings.EnvSettings`'.
"""

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from queues import EnvSettings, Flag, Names

DEFAULT_MEMBERS_FILE = Path(__file__).with_name("members.toml")
# The same council on an Ollama server (llama3.2, with tools): for real answers, and for tests that
# script the models of a council as a server-backed one is configured.
OLLAMA_MEMBERS_FILE = Path(__file__).with_name("members-ollama.toml")
DEFAULT_PRICES_FILE = Path(__file__).with_name("prices.toml")


class CouncilSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="COUNCIL_")

    members_file: Path = DEFAULT_MEMBERS_FILE
    # LLM servers: members pick a provider in the members file; these say where each one is.
    ollama_base_url: str = Field(default="http://127.0.0.1:11434", validation_alias="OLLAMA_BASE_URL")
    openai_base_url: str = Field(default="https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    openai_api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY", repr=False)
    llm_retries: int = 1
    # The workers' models (provider "worker"): how long a call waits for its first event before it
    # asks whether any worker serves the `llm` queue (none: LLMUnavailable, saying to start one).
    llm_start_wait_s: float = Field(default=5.0, gt=0)
    # Time limits, in seconds: a member answering, critiquing, the chair, the router, `check()`.
    member_timeout_s: float = 60.0
    critique_timeout_s: float = 30.0
    chair_timeout_s: float = 90.0
    router_timeout_s: float = 5.0
    check_timeout_s: float = 2.0
    # Deliberation: a critique round, and whether members' answers are spoken (per call too).
    critique: Flag = True
    hear_members: Flag = False
    # Without hear_members, the first member to start answering is still heard, while the others,
    # the critique and the chair work: the council's first sound comes when one answer's first
    # sentence does (seconds sooner on a small model on a CPU), not when the chair's does.
    hear_first: Flag = True
    # Which TTS engine's voice a member speaks in: the first of these it has one for. espeak-ng
    # first: its first audio comes ~70 ms sooner on a CPU than Piper's (see README, Benchmarks);
    # "piper,espeak" gives the chair Piper's more natural voice.
    tts_engines: Names = ("espeak", "piper")
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
    budget_daily: Names = ()
    budget_turn: Names = ()
    prices_file: Path = DEFAULT_PRICES_FILE
    # Users who may read everyone's usage and the whole ledger: by default the one user of a
    # server without tokens ("anonymous") or with the one COUNCIL_API_TOKEN ("default"); `none`
    # for nobody (an empty value means the default, as for every setting).
    operators: Names = ("anonymous", "default")

    @field_validator("operators")
    @classmethod
    def _nobody(cls, operators: tuple[str, ...]) -> tuple[str, ...]:
        return () if tuple(o.lower() for o in operators) == ("none",) else operators

    # Tools members may call (see tools.py): rounds of tool calls per answer, time per call, and
    # the HTTP tool, off unless turned on, to hosts on its allow-list only.
    tool_rounds: int = 3
    tool_timeout_s: float = 10.0
    tools_http: Flag = False
    tools_http_allow: Names = ()
    # TigerGraph: when a host is given, turns and topics are also written there.
    tigergraph_host: str | None = Field(default=None, validation_alias="TIGERGRAPH_HOST")
    tigergraph_graph: str = Field(default="council", validation_alias="TIGERGRAPH_GRAPH")
    tigergraph_username: str = Field(default="tigergraph", validation_alias="TIGERGRAPH_USERNAME")
    tigergraph_password: str | None = Field(default=None, validation_alias="TIGERGRAPH_PASSWORD", repr=False)
    tigergraph_token: str | None = Field(default=None, validation_alias="TIGERGRAPH_TOKEN", repr=False)

    @property
    def tigergraph(self) -> bool:
        return bool(self.tigergraph_host)

    def base_url(self, provider: str) -> str:
        return self.ollama_base_url if provider == "ollama" else self.openai_base_url
