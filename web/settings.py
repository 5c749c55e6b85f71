"""The app's settings, read once from the environment at start."""

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Self
from urllib.parse import urlsplit

from council import CouncilSettings
from queues import QueueSettings, SettingsError

# Who calls when no token is configured; the user of COUNCIL_API_TOKEN.
ANONYMOUS = "anonymous"
DEFAULT_USER = "default"
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Names a browser on this machine uses for it: always answered (the images' health checks use them).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Binding these serves every interface: no one host name comes of it.
EVERY_INTERFACE = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class ServerSettings:
    """How `python -m web` serves the app, and whom it answers.

    The Host and Origin checks defeat DNS rebinding and cross-site requests (see `web.sitecheck`);
    the limits bound what one client can hold: a request's head, in bytes and in time, and the
    connections open at once.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    # Host names the app answers to, besides loopback and the host it binds. "*" answers any:
    # the default of an app built in code (tests, whose clients say `testserver`); `from_env`,
    # which `python -m web` uses, defaults to loopback only.
    allowed_hosts: tuple[str, ...] = ("*",)
    # Origins (scheme://host[:port]) besides the app's own whose pages may open the chat
    # WebSocket and send POST, PUT, PATCH and DELETE requests.
    allowed_origins: tuple[str, ...] = ()
    # Serve a host other than loopback with no API token: anyone who reaches it is the operator.
    allow_open: bool = False
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("port", "max_header_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise SettingsError(f"COUNCIL_{name.upper()} must be a positive integer, got {getattr(self, name)}.")
        if not self.header_timeout_s > 0:
            raise SettingsError(f"COUNCIL_HEADER_TIMEOUT_S must be a positive number, got {self.header_timeout_s}.")
        for host in self.allowed_hosts:
            if host != "*" and not _HOST_NAME.match(host.removeprefix("*.")):
                raise SettingsError(
                    f"COUNCIL_ALLOWED_HOSTS: {host!r} is not a host name (write council.example.com,10.0.0.5, "
                    "with no scheme or port; *.example.com for its subdomains, * for any)."
                )
        for origin in self.allowed_origins:
            if normal_origin(origin) is None:
                raise SettingsError(
                    f"COUNCIL_ALLOWED_ORIGINS: {origin!r} is not an origin (write https://council.example.com "
                    "or http://10.0.0.5:8000: a scheme, a host and a port if not the default, no path)."
                )

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
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        def number(name: str, default: float) -> float:
            raw = environ.get(name, "").strip()
            try:
                return type(default)(raw) if raw else default
            except ValueError:
                what = "an integer" if isinstance(default, int) else "a number"
                raise SettingsError(f"{name} must be {what}, got {raw!r}.") from None

        allow_open = environ.get("COUNCIL_ALLOW_OPEN", "").strip().lower()
        if allow_open not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise SettingsError(f"COUNCIL_ALLOW_OPEN must be 1 or 0, got {allow_open!r}.")
        return cls(
            host=environ.get("COUNCIL_HOST", "").strip() or cls.host,
            port=int(number("COUNCIL_PORT", cls.port)),
            allowed_hosts=_names(environ.get("COUNCIL_ALLOWED_HOSTS")) or LOOPBACK_HOSTS,
            allowed_origins=_names(environ.get("COUNCIL_ALLOWED_ORIGINS")),
            allow_open=allow_open in ("1", "true", "yes", "on"),
            max_header_bytes=int(number("COUNCIL_MAX_HEADER_BYTES", cls.max_header_bytes)),
            header_timeout_s=number("COUNCIL_HEADER_TIMEOUT_S", cls.header_timeout_s),
            max_connections=int(number("COUNCIL_MAX_CONNECTIONS", cls.max_connections)),
        )


_HOST_NAME = re.compile(r"^(\[?[0-9A-Fa-f:.]+\]?|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?)$")


def _names(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


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


@dataclass(frozen=True)
class AppSettings:
    queues: QueueSettings
    council: CouncilSettings = field(default_factory=CouncilSettings)
    # Who answers a turn: the council (LLMs configured in the members file), or `echo`, which
    # speaks the user's words back, for running the voice path with no LLM at all.
    responder: Literal["council", "echo"] = "council"
    # When set, every API and WebSocket call must carry this token; its user is "default".
    api_token: str | None = field(default=None, repr=False)
    # More tokens, each naming its user (user -> token). Sessions, audio and batches belong to the
    # user who made them. With no token at all, everyone is the one user "anonymous".
    api_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    server: ServerSettings = field(default_factory=ServerSettings)
    # Recordings uploaded whole (`audio_start` ... `audio_end`) are held in this process until they
    # end: at most this many bytes of them, all sockets together (each one at most MAX_AUDIO_BYTES).
    max_recording_bytes: int = 256 * 2**20
    # Audio a user may have stored for the workers (uploads, recordings) within a blob's lifetime.
    blob_quota_bytes: int = 1024 * 2**20

    def __post_init__(self) -> None:
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

    @property
    def users(self) -> dict[str, str]:
        """User -> token: the users of COUNCIL_API_TOKENS, and "default" for COUNCIL_API_TOKEN."""
        return {**self.api_users, **({DEFAULT_USER: self.api_token} if self.api_token else {})}

    @property
    def token_users(self) -> dict[str, str]:
        """Token -> user, for every token the app accepts; empty when it needs none."""
        return {token: user for user, token in self.users.items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        responder = environ.get("COUNCIL_RESPONDER", "council")
        if responder not in ("council", "echo"):
            raise SettingsError(f"COUNCIL_RESPONDER must be council or echo, got {responder!r}")
        return cls(
            queues=QueueSettings.from_env(environ),
            council=CouncilSettings.from_env(environ),
            responder="echo" if responder == "echo" else "council",
            api_token=environ.get("COUNCIL_API_TOKEN") or None,
            api_users=parse_users(environ.get("COUNCIL_API_TOKENS", "")),
            server=ServerSettings.from_env(environ),
            max_recording_bytes=_bytes(environ, "COUNCIL_MAX_RECORDING_BYTES", 256 * 2**20),
            blob_quota_bytes=_bytes(environ, "COUNCIL_BLOB_QUOTA_BYTES", 1024 * 2**20),
        )


def _bytes(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a positive number of bytes, got {raw!r}.")
    return int(raw)


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
