"""The worker's errors share the one base (`shared_schemas.Refusal`): a `VoiceError` has a code
of the vocabulary, `retryable` from the one set, and the `JobError` a failed job comes back with."""

import pytest

from shared_schemas import RETRYABLE, ErrorCode, JobError, Refusal
from voice_worker.errors import VoiceError, job_error


@pytest.mark.parametrize("code", [ErrorCode.UNDECODABLE_AUDIO, ErrorCode.UNKNOWN_VOICE, ErrorCode.ENGINE_FAILED])
def test_a_voice_error_is_a_refusal_and_comes_back_as_its_job_error(code):
    exc = VoiceError(code, "Say what to do.")
    assert isinstance(exc, Refusal)
    assert exc.retryable is (code in RETRYABLE)
    assert exc.status == (500 if exc.retryable else 422)
    assert job_error(exc) == JobError(code=code, message="Say what to do.", retryable=exc.retryable)
    assert job_error(exc).model_dump(mode="json") == exc.as_error()
