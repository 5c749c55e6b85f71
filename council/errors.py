"""What can go wrong in the council, as a small named taxonomy.

Each error carries a `code` and whether trying again may help (`retryable`), so the web layer
can turn any of them into its one error shape without knowing the council's internals.
"""


class CouncilError(Exception):
    """Base of the council's errors; the message says what to do about it."""

    code = "council_failed"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CouncilError, ValueError):
    """A setting or the members file is missing or malformed; the message names it."""

    code = "council_config"


class LLMUnavailable(CouncilError):
    """No language model answers: the server is down, unreachable, or its package is missing."""

    code = "llm_unavailable"
    retryable = True


class CouncilFailed(CouncilError):
    """The turn could not be answered: every member failed, or the chair did."""

    code = "council_failed"
    retryable = True


class BudgetExceeded(CouncilError):
    """A budget does not allow this turn (or this call): the message says which one and when it
    resets, or that an operator froze it."""

    code = "budget_exceeded"
