"""A voice worker runs Council's job functions and the ones its operator adds, nothing else."""

import uuid

from rq import Callback, Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import JobClient, QueueSettings, replay
from shared_schemas import ErrorCode, EventType, PingJob
from voice_worker import context
from voice_worker.settings import WorkerSettings
from voice_worker.worker import VoiceWorker


def run_burst(queues: QueueSettings, connection, extra: tuple[str, ...] = ()) -> None:
    worker = VoiceWorker(WorkerSettings(queues=queues, extra_functions=extra), None, connection=connection)
    try:
        worker.work(burst=True)
    finally:
        context.install(None)  # type: ignore[arg-type]


def test_a_job_naming_another_function_fails_as_data_and_does_not_run(own, connection, tmp_path, capsys):
    session = f"guard-{uuid.uuid4().hex[:8]}"
    queue = Queue(own.realtime_queue, connection=connection, serializer=JSONSerializer)
    marker = tmp_path / "pwned"
    # Its failure callback is a function too: it must not be imported either.
    hostile = queue.enqueue(
        "os.system", f"touch {marker}", meta={"session_id": session}, on_failure=Callback("builtins.print")
    )
    ping = PingJob(session_id=session, job_id=f"{session}-ping")
    JobClient(own, connection).enqueue(ping, queue=own.realtime_queue)
    run_burst(own, connection)
    assert not marker.exists()
    events = {e.job_id: e for e in replay(connection, own, session)}
    refused = events[hostile.id]
    assert refused.type is EventType.FAILED and refused.payload.code == ErrorCode.INVALID_PAYLOAD
    assert "'os.system'" in refused.payload.message and "WORKER_EXTRA_FUNCTIONS" in refused.payload.message
    assert not refused.payload.retryable
    assert Job.fetch(hostile.id, connection=connection, serializer=JSONSerializer).get_status() == "failed"
    assert hostile.id not in capsys.readouterr().out  # print (the callback) was never called with the job
    assert events[ping.job_id].type is EventType.PONG  # and the worker went on


def test_an_operator_can_allow_more_functions(own, connection):
    queue = Queue(own.realtime_queue, connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("os.getpid")
    run_burst(own, connection, extra=("os.getpid",))
    fetched = Job.fetch(job.id, connection=connection, serializer=JSONSerializer)
    assert fetched.get_status() == "finished" and isinstance(fetched.return_value(), int)


def test_extra_functions_come_from_the_environment():
    settings = WorkerSettings.from_env({"WORKER_EXTRA_FUNCTIONS": " os.getpid, mypkg.jobs.clean ,"})
    assert settings.extra_functions == ("os.getpid", "mypkg.jobs.clean")
    assert WorkerSettings.from_env({}).extra_functions == ()


def test_a_job_with_repeats_is_refused_saying_so_not_silently_run_once(own, connection):
    from rq import Repeat

    session = f"guard-{uuid.uuid4().hex[:8]}"
    queue = Queue(own.realtime_queue, connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("voice_worker.jobs.ping", {"session_id": session, "job_id": "x"}, repeat=Repeat(times=3),
                        meta={"session_id": session})  # fmt: skip
    run_burst(own, connection)
    (refused,) = [e for e in replay(connection, own, session) if e.job_id == job.id]
    assert refused.type is EventType.FAILED and "do not repeat jobs" in refused.payload.message
