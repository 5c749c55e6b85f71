"""End-of-turn detection: whether a person who paused has finished what they were saying.

The Smart Turn engine lives in `voice_worker.turn.smart_turn`; it is imported when a worker loads
it (see engines.py).
"""

from .base import TurnModel

__all__ = ["TurnModel"]
