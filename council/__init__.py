"""The council: members who deliberate on a turn, and the seam a turn calls (`Responder`)."""

from .budgets import Budgets, Payer
from .errors import BudgetExceeded, ConfigError, CouncilError, CouncilFailed, LLMUnavailable
from .members import Council, Member
from .members import load as load_members
from .providers import ProviderStatus
from .replies import EchoResponder, Reply, Responder, Step
from .responder import CouncilResponder
from .settings import DEFAULT_MEMBERS_FILE, OLLAMA_MEMBERS_FILE, CouncilSettings
from .worker_model import BUILTIN_NOTICE, LLMQueue, WorkerChatModel

__all__ = [
    "BUILTIN_NOTICE",
    "DEFAULT_MEMBERS_FILE",
    "OLLAMA_MEMBERS_FILE",
    "BudgetExceeded",
    "Budgets",
    "ConfigError",
    "Council",
    "CouncilError",
    "CouncilFailed",
    "CouncilResponder",
    "CouncilSettings",
    "EchoResponder",
    "LLMQueue",
    "LLMUnavailable",
    "Member",
    "Payer",
    "ProviderStatus",
    "Reply",
    "Responder",
    "Step",
    "WorkerChatModel",
    "load_members",
]
