"""The claim takes users in turn: one user's flood delays another user's next job by one job.

A real Redis and the worker's own claim (`VoiceWorker.dequeue_job_and_maintain_ttl`, which moves a
job into its in-flight list without running it), on queues of each test's own; jobs enqueued as
the app enqueues them (`JobClient`), others pushed as RQ itself does.
"""

import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import JobClient, QueueSettings
from shared_schemas import PingJob, SynthesisJob, TranscriptionJob
from voice_worker import context
from voice_worker.settings import WorkerSettings
from voice_worker.worker import VoiceWorker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def claimers(own, connection):
    """`claimers(settings=own, served=None)`: a worker (no engines, not started) whose claim the test
    drives; `served`: its WORKER_QUEUES."""
    made = []

    def make(settings: QueueSettings = own, served: tuple[str, ...] | None = None) -> VoiceWorker:
        made.append(VoiceWorker(WorkerSettings(queues=settings, queues_served=served), None, connection=connection))
        return made[-1]

    yield make
    context.install(None)  # type: ignore[arg-type]


def take(worker: VoiceWorker) -> str | None:
    found = worker.dequeue_job_and_maintain_ttl(None)
    return None if found is None else found[0].id


def say(user: str, n: int, session: str | None = None) -> SynthesisJob:
    session = session or f"s-{user}"
    return SynthesisJob(session_id=session, job_id=f"{user}-say-{n}", text="Hi.", voice="max", turn_id="t1", user=user)


def hear(user: str, n: int, session: str | None = None) -> TranscriptionJob:
    return TranscriptionJob(session_id=session or f"s-{user}", job_id=f"{user}-hear-{n}", audio_key="k", user=user)


def test_a_flood_from_one_user_delays_the_others_by_one_job(own, connection, claimers):
    client = JobClient(own, connection)
    for n in range(20):
        client.enqueue(say("flood", n))
    client.enqueue(say("bob", 0))  # bob's next sentence: the speech queue
    client.enqueue(hear("carol", 0))  # carol's new turn: the realtime queue
    worker = claimers()
    order = [take(worker) for _ in range(5)]
    assert order == ["flood-say-0", "bob-say-0", "carol-hear-0", "flood-say-1", "flood-say-2"]
    # RQ's lists still hold every waiting job, in the order it came (rq-dashboard, KEDA, /health).
    waiting = [i.decode() for i in connection.lrange(f"rq:queue:{own.speech_queue}", 0, -1)]
    assert waiting == [f"flood-say-{n}" for n in range(3, 20)]
    assert connection.llen(f"rq:queue:{own.realtime_queue}") == 0
    assert connection.lrange(worker.inflight.key, 0, -1) == [i.encode() for i in order]


def test_a_users_own_sentences_still_go_before_its_new_work(own, connection, claimers):
    client = JobClient(own, connection)
    client.enqueue(hear("ann", 0))
    client.enqueue(say("ann", 0))
    client.enqueue(say("ann", 1))
    worker = claimers()
    assert [take(worker) for _ in range(4)] == ["ann-say-0", "ann-say-1", "ann-hear-0", None]


def test_batch_files_of_two_users_take_turns_after_the_conversations(own, connection, claimers):
    client = JobClient(own, connection)
    for n in range(3):
        client.enqueue(hear("big", n), queue=own.batch_queue)
    client.enqueue(hear("small", 0), queue=own.batch_queue)
    client.enqueue(say("chat", 0))
    worker = claimers()
    order = [take(worker) for _ in range(6)]
    assert order == ["chat-say-0", "big-hear-0", "small-hear-0", "big-hear-1", "big-hear-2", None]


def test_a_cancelled_job_is_skipped_and_its_user_may_queue_again(own, connection, claimers):
    own = own.model_copy(update={"max_queued_per_user": 2})
    client = JobClient(own, connection)
    client.enqueue(say("dan", 0))
    client.enqueue(say("dan", 1))
    assert client.cancel("dan-say-0")  # our client: out of its lane too
    client.enqueue(say("dan", 2))
    Job.fetch("dan-say-1", connection=connection, serializer=JSONSerializer).cancel()  # RQ itself, behind our back
    worker = claimers(own)
    assert [take(worker) for _ in range(2)] == ["dan-say-2", None]
    assert not list(connection.scan_iter(f"{own.key_prefix}:fair:*:lane:*"))
    assert not list(connection.scan_iter(f"{own.key_prefix}:fair:queued:*"))  # the counts came back to 0


def test_a_job_a_worker_has_taken_is_not_cancelled_behind_its_back(own, connection, claimers):
    """Between the claim and the start the job still says `queued`: a cancel then must not report
    it cancelled (the worker runs it; its audio would reach a turn that was told it would not)."""
    client = JobClient(own, connection)
    client.enqueue(say("gil", 0))
    client.enqueue(say("gil", 1))
    worker = claimers()
    assert take(worker) == "gil-say-0"
    assert Job.fetch("gil-say-0", connection=connection, serializer=JSONSerializer).get_status() == "queued"
    assert client.cancel("gil-say-0") is False
    assert Job.fetch("gil-say-0", connection=connection, serializer=JSONSerializer).get_status() == "queued"
    # Stopped instead, it is asked to stop where it runs (a file worked in pieces stops at its first).
    assert client.stop("gil-say-0") == "stopping" and connection.exists(own.cancel_key("gil-say-0"))
    assert client.cancel("gil-say-1") is True  # still waiting: cancelled
    assert take(worker) is None


def test_a_job_put_back_at_the_front_goes_first(own, connection, claimers):
    client = JobClient(own, connection)
    client.enqueue(say("eve", 0))
    client.enqueue(say("eve", 1))
    client.enqueue(say("fay", 0))
    dead = claimers()
    assert take(dead) == "eve-say-0"
    dead.inflight.settle("eve-say-0")  # its worker died: back at the front of its queue
    # An RQ job no lane knows (enqueued by another client) waits its turn at the back of the list.
    Queue(own.speech_queue, connection=connection, serializer=JSONSerializer).enqueue("os.getpid", job_id="rq-job")
    survivor = claimers()
    order = [take(survivor) for _ in range(5)]
    assert order == ["eve-say-0", "fay-say-0", "eve-say-1", "rq-job", None]


def test_a_user_at_its_running_cap_waits_while_others_run(own, connection, claimers):
    own = own.model_copy(update={"max_running_per_user": 1})
    client = JobClient(own, connection)
    for n in range(3):
        client.enqueue(say("gus", n))
    client.enqueue(say("hal", 0))
    client.enqueue(say("hal", 1))
    first, second = claimers(own), claimers(own)
    assert take(first) == "gus-say-0"
    assert take(second) == "hal-say-0"  # gus has one running: hal's turn
    assert take(second) is None  # both at their cap
    first.inflight.drop("gus-say-0")  # it ended
    assert take(first) == "gus-say-1"
    second.inflight.drop("hal-say-0")
    assert take(second) == "hal-say-1"


def test_a_session_at_its_running_cap_waits(own, connection, claimers):
    own = own.model_copy(update={"max_running_per_session": 1})
    client = JobClient(own, connection)
    client.enqueue(say("ivy", 0, session="one"))
    client.enqueue(say("ivy", 1, session="one"))
    client.enqueue(PingJob(session_id="two", job_id="ivy-ping", user="ivy"))
    first, second = claimers(own), claimers(own)
    assert take(first) == "ivy-say-0"
    assert take(second) == "ivy-ping"  # session one is at its cap; session two is not
    assert take(second) is None


def test_an_idle_worker_never_takes_the_wake_of_a_job_it_does_not_serve(own, connection, claimers):
    """Idle workers block on a token per job enqueued. An LLM-only worker that blocked first took a
    transcription's token, and the voice worker found the job only when its own wait ran out (up to
    1 s: seen as push-to-talk transcripts 1.1 s late in every other turn with `make run`'s workers)."""
    import threading
    import time

    llm_only, voice = claimers(served=(own.llm_queue,)), claimers()
    took: dict[str, tuple[tuple[str, str] | None, float]] = {}

    def idle(name: str, worker: VoiceWorker) -> None:
        found = worker.inflight.claim_job(3.0)
        took[name] = (found, time.monotonic())

    waiting = [threading.Thread(target=idle, args=args) for args in (("llm", llm_only), ("voice", voice))]
    for thread in waiting:  # the LLM worker blocks first: the first to be woken, with one wake list
        thread.start()
        time.sleep(0.3)
    enqueued = time.monotonic()
    JobClient(own, connection).enqueue(hear("eve", 0))
    for thread in waiting:
        thread.join(5)
    found, at = took["voice"]
    assert found is not None and found[1] == "eve-hear-0", found
    assert at - enqueued < 0.5, f"the voice worker took its job {at - enqueued:.2f} s after it was enqueued"
    assert took["llm"][0] is None
