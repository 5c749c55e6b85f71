"""The app's settings, read once from the environment at start."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Self

from council import CouncilSettings
from queues import QueueSettings, SettingsError


@dataclass(frozen=True)
class AppSettings:
    queues: QueueSettings
    council: CouncilSettings = field(default_factory=CouncilSettings)
    # Who answers a turn: the council (LLMs configured in the members file), or `echo`, which
    # speaks the user's words back, for running the voice path with no LLM at all.
    responder: Literal["council", "echo"] = "council"
    # When set, every API and WebSocket call must carry this token.
    api_token: str | None = None

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
        )
