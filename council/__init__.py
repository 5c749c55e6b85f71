"""The council: members who deliberate on a turn, and the seam a turn calls (`Responder`)."""

from .errors import ConfigError, CouncilError, CouncilFailed, LLMUnavailable
from .members import Council, Member
from .providers import ProviderStatus
from .replies import EchoResponder, Reply, Responder, Step
from .responder import CouncilResponder
from .settings import CouncilSettings

__all__ = [
    "ConfigError",
    "Council",
    "CouncilError",
    "CouncilFailed",
    "CouncilResponder",
    "CouncilSettings",
    "EchoResponder",
    "LLMUnavailable",
    "Member",
    "ProviderStatus",
    "Reply",
    "Responder",
    "Step",
]
