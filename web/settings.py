"""The app's settings, read once from the environment at start: one model, `AppSettings`, holding
the queues', the council's and the server's sections (the rules: `queues.settings.EnvSettings`)."""

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from council import CouncilSettings
from queues import EnvSettings, Flag, Names, QueueSettings, SettingsError

# Who calls when no token is configured; the user of COUNCIL_API_TOKEN.
ANONYMOUS = "anonymous"
DEFAULT_USER = "default"
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Names a browser on this machine uses for it: always answered (the images' health checks use them).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Binding these serves every interface: no one host name comes of it.
EVERY_INTERFACE = ("0.0.0.0", "::", "")


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _users(value: Any) -> Any:
    return parse_users(value) if isinstance(value, str) else value


class ServerSettings(EnvSettings):
    """How `python -m web` serves the app, and whom it answers.

    The Host and Origin checks defeat DNS rebinding and cross-site requests (see `web.sitecheck`);
    the limits bound what one client can hold: a request's head, in bytes and in time, and the
    connections open at once.
    """

    model_config = SettingsConfigDict(env_prefix="COUNCIL_")

    host: Annotated[str, BeforeValidator(_stripped)] = "127.0.0.1"
    port: int = Field(default=8000, gt=0)
    # Host names the app answers to, besides loopback and the host it binds. "*" answers any:
    # the default of an app built in code (tests, whose clients say `testserver`); `from_env`,
    # which `python -m web` uses, defaults to loopback only.
    allowed_hosts: Names = ("*",)
    # Origins (scheme://host[:port]) besides the app's own whose pages may open the chat
    # WebSocket and send POST, PUT, PATCH and DELETE requests.
    allowed_origins: Names = ()
    # Serve a host other than loopback with no API token: anyone who reaches it is the operator.
    allow_open: Flag = False
    max_header_bytes: int = Field(default=64 * 1024, gt=0)
    header_timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=1000, gt=0)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if host != "*" and not _HOST_NAME.match(host.removeprefix("*.")):
                raise SettingsError(
                    f"COUNCIL_ALLOWED_HOSTS: {host!r} is not a host name (write council.example.com,10.0.0.5, "
                    "with no scheme or port; *.example.com for its subdomains, * for any)."
                )
        return hosts

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if normal_origin(origin) is None:
                raise SettingsError(
                    f"COUNCIL_ALLOWED_ORIGINS: {origin!r} is not an origin (write https://council.example.com "
                    "or http://10.0.0.5:8000: a scheme, a host and a port if not the default, no path)."
                )
        return origins

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host name the app answers to: loopback, the allowed ones, the one it binds."""
        if "*" in self.allowed_hosts:
            return ("*",)
        bound = () if self.host in EVERY_INTERFACE else (self.host.strip("[]").lower(),)
        names = (*LOOPBACK_HOSTS, *(h.strip("[]").lower() for h in self.allowed_hosts), *bound)
        return tuple(dict.fromkeys(names))

    @property
    def origins(self) -> frozenset[str]:
        """The allowed origins, normalized as `normal_origin` gives them."""
        return frozenset(o for o in map(normal_origin, self.allowed_origins) if o is not None)

    @property
    def loopback(self) -> bool:
        """Whether the app serves this machine only."""
        host = self.host.strip("[]")
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False  # a name: it may resolve to any interface

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        values = cls.env_values(environ)
        values.setdefault("allowed_hosts", LOOPBACK_HOSTS)  # not any host, as in code
        return cls(**values)


_HOST_NAME = re.compile(r"^(\[?[0-9A-Fa-f:.]+\]?|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?)$")


def normal_origin(origin: str) -> str | None:
    """`scheme://host:port`, lower case, with the scheme's default port written out; None for
    what is not an http(s) origin (a path, a user, `null`)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    port = port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


class AppSettings(EnvSettings):
    """The app's one settings model: its sections, and what is the app's own."""

    model_config = SettingsConfigDict(env_prefix="COUNCIL_")

    queues: QueueSettings
    council: CouncilSettings = Field(default_factory=CouncilSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    # Who answers a turn: the council (LLMs configured in the members file), or `echo`, which
    # speaks the user's words back, for running the voice path with no LLM at all.
    responder: Literal["council", "echo"] = "council"
    # When set, every API and WebSocket call must carry this token; its user is "default".
    api_token: str | None = Field(default=None, repr=False)
    # More tokens, each naming its user (user -> token). Sessions, audio and batches belong to the
    # user who made them. With no token at all, everyone is the one user "anonymous".
    api_users: Annotated[Mapping[str, str], BeforeValidator(_users)] = Field(
        default_factory=dict, validation_alias="COUNCIL_API_TOKENS", repr=False
    )
    # Recordings uploaded whole (`audio_start` ... `audio_end`) are held in this process until they
    # end: at most this many bytes of them, all sockets together (each one at most MAX_AUDIO_BYTES).
    max_recording_bytes: int = Field(default=256 * 2**20, gt=0)
    # Audio a user may have stored for the workers (uploads, recordings) within a blob's lifetime.
    blob_quota_bytes: int = Field(default=1024 * 2**20, gt=0)
    # Redis connections of this process (commands are short: a few ms each even under load), and
    # how long a command waits for a free one when a burst of sessions wants more (see services.py).
    redis_pool_size: int = Field(default=100, gt=0)
    redis_pool_wait_s: float = Field(default=10.0, gt=0)
    # Turns under way (open_turns.py): this process keeps a key alive this long, renewed every beat;
    # the turns of a process whose key is gone are ended, so within about ttl + beat of its death.
    app_alive_ttl_s: float = Field(default=15.0, gt=0)
    app_beat_s: float = Field(default=5.0, gt=0)
    # A microphone stream whose listener's lease is gone waits this long for another worker to resume
    # it (a dead worker's jobs are adopted within about WORKER_ALIVE_TTL + 2 * WORKER_BEAT) before it
    # fails `worker_lost` (web/mic.py).
    mic_resume_wait_s: float = Field(default=30.0, gt=0)
    # How long the app trusts its last look at the council's LLM servers (/health, the pages).
    llm_status_ttl_s: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.app_beat_s * 2 > self.app_alive_ttl_s:
            raise SettingsError("COUNCIL_APP_BEAT_S must be at most half of COUNCIL_APP_ALIVE_TTL_S")
        users = self.users
        if DEFAULT_USER in self.api_users:
            # Even with no COUNCIL_API_TOKEN: "default" is an operator unless COUNCIL_OPERATORS
            # says otherwise, so a tenant of that name would silently read everyone's usage.
            raise SettingsError(
                f"COUNCIL_API_TOKENS names the user {DEFAULT_USER!r}, the user of COUNCIL_API_TOKEN "
                "(an operator by default, see COUNCIL_OPERATORS): give this user another name."
            )
        for user, token in users.items():
            if not USER_NAME.match(user) or user == ANONYMOUS:
                raise SettingsError(
                    f"API user {user!r}: a name is 1-64 letters, digits or . _ @ -, and not {ANONYMOUS!r}."
                )
            if not token or token != token.strip() or "," in token:
                raise SettingsError(f"API user {user!r}: the token is empty, has a comma or spaces around it.")
        if len(set(users.values())) != len(users):
            raise SettingsError("Two API users have the same token: give each user a token of its own.")
        if not users and not self.server.loopback and not self.server.allow_open:
            # With no token everyone is "anonymous", an operator: fine on this machine only.
            raise SettingsError(
                f"No API token is set, and the app would listen on {self.server.host!r}, open to anyone who "
                "reaches it. Set COUNCIL_API_TOKEN (or COUNCIL_API_TOKENS), or listen on 127.0.0.1 only; "
                "COUNCIL_ALLOW_OPEN=1 serves it open anyway (dangerous: anyone may use the council and "
                "read everyone's usage)."
            )
        return self

    @property
    def users(self) -> dict[str, str]:
        """User -> token: the users of COUNCIL_API_TOKENS, and "default" for COUNCIL_API_TOKEN."""
        return {**self.api_users, **({DEFAULT_USER: self.api_token} if self.api_token else {})}

    @property
    def token_users(self) -> dict[str, str]:
        """Token -> user, for every token the app accepts; empty when it needs none."""
        return {token: user for user, token in self.users.items()}


def parse_users(raw: str) -> dict[str, str]:
    """`alice:TOKEN_A,bob:TOKEN_B` -> {"alice": "TOKEN_A", "bob": "TOKEN_B"}. The messages name
    an entry by its place and user, never by its token."""
    users: dict[str, str] = {}
    for place, entry in enumerate((e.strip() for e in raw.split(",")), 1):
        if not entry:
            continue
        user, sep, token = entry.partition(":")
        user, token = user.strip(), token.strip()
        if not sep or not user or not token:
            raise SettingsError(
                f"COUNCIL_API_TOKENS: entry {place} is not USER:TOKEN (write alice:TOKEN_A,bob:TOKEN_B)."
            )
        if user in users:
            raise SettingsError(f"COUNCIL_API_TOKENS names the user {user!r} twice.")
        users[user] = token
    return users
