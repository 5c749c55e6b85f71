"""The council's public surface, pinned: the web app, and the tests and benchmarks that build a
council from the default members file, depend on these names only (`council.scripted`, the
scripted chat model, is the one module they reach besides: tests/test_imports.py)."""

import council


def test_public_names():
    assert council.__all__ == [
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
    assert all(hasattr(council, name) for name in council.__all__)


def test_errors_carry_a_code_and_whether_to_retry():
    # `retryable` comes from the code (shared_schemas.RETRYABLE): asked of an error raised.
    assert (council.LLMUnavailable.code, council.LLMUnavailable("x").retryable) == ("llm_unavailable", True)
    assert (council.ConfigError.code, council.ConfigError("x").retryable) == ("council_config", False)
    assert issubclass(council.ConfigError, ValueError)
    assert all(issubclass(e, council.CouncilError) for e in (council.LLMUnavailable, council.CouncilFailed))
    assert (council.BudgetExceeded.code, council.BudgetExceeded("x").retryable) == ("budget_exceeded", False)
