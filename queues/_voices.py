"""Which voices the running workers speak: each worker announces its voices at start."""

import redis

from .settings import QueueSettings


def voices_key(settings: QueueSettings) -> str:
    return f"{settings.key_prefix}:voices"


def announce_voices(connection: redis.Redis, settings: QueueSettings, voices: dict[str, str]) -> None:
    """Add `voices` (name -> description) to the set the app offers to users."""
    if voices:
        # Built here, so that its type is redis-py's (a dict's key type is invariant).
        connection.hset(voices_key(settings), mapping={name: text for name, text in voices.items()})
