"""What can go wrong in the council, as a small named taxonomy.

Each error is a `shared_schemas.Refusal`: a `code`, whether trying again may help (`retryable`,
from the code) and an HTTP status, so the web layer can turn any of them into its one error shape
without knowing the council's internals.
"""

from shared_schemas import ErrorCode, Refusal


class CouncilError(Refusal):
    """Base of the council's errors; the message says what to do about it."""

    code = ErrorCode.COUNCIL_FAILED
    status = 502  # the council (its models) failed, not the request


class ConfigError(CouncilError, ValueError):
    """A setting or the members file is missing or malformed; the message names it."""

    code = ErrorCode.COUNCIL_CONFIG
    status = 500


class LLMUnavailable(CouncilError):
    """No language model answers: the server is down, unreachable, or its package is missing."""

    code = ErrorCode.LLM_UNAVAILABLE
    status = 503


class CouncilFailed(CouncilError):
    """The turn could not be answered: every member failed, or the chair did."""

    code = ErrorCode.COUNCIL_FAILED


class BudgetExceeded(CouncilError):
    """A budget does not allow this turn (or this call): the message says which one and when it
    resets, or that an operator froze it."""

    code = ErrorCode.BUDGET_EXCEEDED
    status = 429
