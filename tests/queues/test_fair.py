"""Limits on what one user or session may have waiting: past them an enqueue is refused with
`RateLimited` and writes nothing. A real Redis, queues no worker listens to."""

import asyncio

import pytest

from queues import JobClient, QueueSettings, RateLimited, SettingsError
from shared_schemas import SynthesisJob, TranscriptionJob

pytestmark = pytest.mark.timeout(30)


def say(user: str, n: int, session: str = "s1") -> SynthesisJob:
    return SynthesisJob(session_id=session, job_id=f"{user}-{session}-{n}", text="Hi.", voice="max", user=user)


def test_a_user_with_all_the_jobs_it_may_have_waiting_is_refused_and_nothing_is_written(own, connection):
    client = JobClient(own.model_copy(update={"max_queued_per_user": 3}), connection)
    for n in range(3):
        client.enqueue(say("ann", n, session=f"s{n}"))
    with pytest.raises(RateLimited) as refused:
        client.enqueue(say("ann", 3, session="s3"))
    assert refused.value.code == "rate_limited" and refused.value.scope == "user"
    assert refused.value.retry_after_s > 0 and "at most 3" in refused.value.message
    assert connection.llen(f"rq:queue:{own.realtime_queue}") == 3
    assert not connection.exists("rq:job:ann-s3-3")
    client.enqueue(say("bob", 0))  # another user is not held back
    assert client.cancel("ann-s0-0")  # a job that leaves the queue gives its place back
    client.enqueue(say("ann", 3, session="s3"))


def test_a_session_has_a_limit_of_its_own(own, connection):
    client = JobClient(own.model_copy(update={"max_queued_per_user": 100, "max_queued_per_session": 2}), connection)
    client.enqueue(say("cat", 0))
    client.enqueue(say("cat", 1))
    with pytest.raises(RateLimited) as refused:
        client.enqueue(say("cat", 2))
    assert refused.value.scope == "session" and "This session" in refused.value.message
    client.enqueue(say("cat", 2, session="s2"))


def test_a_batch_over_the_limit_is_refused_whole(own, connection):
    limited = own.model_copy(update={"max_queued_per_user": 3})
    jobs = [TranscriptionJob(session_id="b1", job_id=f"file-{n}", audio_key="k", user="dee") for n in range(4)]

    async def enqueue_all() -> None:
        aconnection = limited.connect_async()
        try:
            await JobClient(limited, connection, aconnection).aenqueue_all(jobs, limited.batch_queue)
        finally:
            await aconnection.aclose()

    with pytest.raises(RateLimited):
        asyncio.run(enqueue_all())
    assert connection.llen(f"rq:queue:{own.batch_queue}") == 0
    assert not list(connection.scan_iter(f"{own.key_prefix}:fair:*"))


def test_zero_means_no_limit(own, connection):
    client = JobClient(own.model_copy(update={"max_queued_per_user": 0, "max_queued_per_session": 0}), connection)
    for n in range(30):
        client.enqueue(say("eli", n))
    assert connection.llen(f"rq:queue:{own.realtime_queue}") == 30


def test_limits_come_from_the_environment():
    env = {"COUNCIL_MAX_QUEUED_PER_USER": "50", "COUNCIL_MAX_RUNNING_PER_SESSION": "2"}
    settings = QueueSettings.from_env(env)
    assert (settings.max_queued_per_user, settings.max_running_per_session) == (50, 2)
    assert settings.max_queued_per_session == 500 and settings.max_running_per_user == 0
    with pytest.raises(SettingsError, match="COUNCIL_MAX_QUEUED_PER_SESSION"):
        QueueSettings.from_env({"COUNCIL_MAX_QUEUED_PER_SESSION": "-1"})
