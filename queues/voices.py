"""Which voices the running workers speak: each worker announces its voices at start."""

import redis

from .settings import QueueSettings


def voices_key(settings: QueueSettings) -> str:
    return f"{settings.key_prefix}:voices"


def announce_voices(connection: redis.Redis, settings: QueueSettings, voices: dict[str, str]) -> None:
    """Add `voices` (name -> description) to the set the app offers to users."""
    if voices:
        connection.hset(voices_key(settings), mapping=voices)
