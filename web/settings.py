"""The app's settings, read once from the environment at start."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from queues import QueueSettings


@dataclass(frozen=True)
class AppSettings:
    queues: QueueSettings
    # When set, every API and WebSocket call must carry this token.
    api_token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        return cls(queues=QueueSettings.from_env(environ), api_token=environ.get("COUNCIL_API_TOKEN") or None)
