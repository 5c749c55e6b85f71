"""The app's settings, read once from the environment at start."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Self

from council import CouncilSettings
from queues import QueueSettings, SettingsError

# Who calls when no token is configured; the user of COUNCIL_API_TOKEN.
ANONYMOUS = "anonymous"
DEFAULT_USER = "default"
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


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

    def __post_init__(self) -> None:
        users = self.users
        if self.api_token and DEFAULT_USER in self.api_users:
            raise SettingsError(f"COUNCIL_API_TOKENS names the user {DEFAULT_USER!r}, the user of COUNCIL_API_TOKEN.")
        for user, token in users.items():
            if not USER_NAME.match(user) or user == ANONYMOUS:
                raise SettingsError(
                    f"API user {user!r}: a name is 1-64 letters, digits or . _ @ -, and not {ANONYMOUS!r}."
                )
            if not token or token != token.strip() or "," in token:
                raise SettingsError(f"API user {user!r}: the token is empty, has a comma or spaces around it.")
        if len(set(users.values())) != len(users):
            raise SettingsError("Two API users have the same token: give each user a token of its own.")

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
        )


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
