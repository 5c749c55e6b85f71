"""Errors the worker raises: each carries the `JobError` the user will see."""

from shared_schemas import ErrorCode, JobError, Refusal


class VoiceError(Refusal):
    """A job cannot be done as asked. Raised by engines and audio code, turned into data by jobs
    (its `JobError`); it never meets HTTP itself, but says the status it stands for: the input's
    fault (422) unless trying again may help (500)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = 500 if self.retryable else 422

    @property
    def error(self) -> JobError:
        return JobError.of(self.code, self.message)


class EngineLoadError(RuntimeError):
    """An engine cannot start: a model file is missing, a package is absent, CUDA is wrong.

    The worker refuses to start with this message rather than fail every job later. Not a
    `Refusal`: no client ever gets it, the person starting the worker does (exit status 2).
    """


def job_error(exc: BaseException) -> JobError:
    """The error a user sees for an exception raised while running a job."""
    # Imported here: rq and pydantic are edges this module translates, not depends on.
    from pydantic import ValidationError
    from rq.timeouts import JobTimeoutException

    if isinstance(exc, VoiceError):
        return exc.error
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}" for err in exc.errors()[:5]
        )
        return JobError.of(ErrorCode.INVALID_PAYLOAD, f"The job's payload is invalid: {problems}.")
    if isinstance(exc, JobTimeoutException):
        return JobError.of(ErrorCode.TIMEOUT, "The job ran past its time limit. Try shorter audio or text.")
    return JobError.of(ErrorCode.ENGINE_FAILED, f"The voice engine failed ({type(exc).__name__}: {exc}). Try again.")
