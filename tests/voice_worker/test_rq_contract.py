"""The parts of RQ (and redis-py) the worker reaches inside, as we rely on them: upgrading RQ fails
here first, naming what moved, not in a worker that loses jobs.

`voice_worker/lean.py` and `worker.py` override about fifteen of RQ's Worker methods and use two
private names (`Job._handle_success`, the `_*_callback_name` attributes: docs/internals.md lists
them, and why no public call does the same); `listening/pool.py` and `inflight.py` record job ends
with RQ's public Job and registry calls. rq is pinned exactly (pyproject.toml) for this reason.
"""

import inspect
import uuid

import pytest
import rq
from redis.client import Pipeline
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.results import Result

PINNED = "3.0.0"

# (owner, method, the parameters we pass or override, in order)
SIGNATURES = [
    (SimpleWorker, "dequeue_job_and_maintain_ttl", ["self", "timeout", "max_idle_time"]),
    (SimpleWorker, "cleanup_execution", ["self", "job", "pipeline", "execution"]),
    (SimpleWorker, "heartbeat", ["self", "timeout", "pipeline"]),
    (SimpleWorker, "run_maintenance_tasks", ["self"]),
    (SimpleWorker, "set_state", ["self", "state", "pipeline"]),
    (SimpleWorker, "check_for_suspension", ["self", "burst"]),
    (SimpleWorker, "execute_job", ["self", "job", "queue"]),
    (SimpleWorker, "prepare_job_execution", ["self", "job", "remove_from_intermediate_queue"]),
    (SimpleWorker, "handle_execution_ended", ["self", "job", "queue", "heartbeat_ttl"]),
    (SimpleWorker, "handle_job_success", ["self", "job", "queue", "started_job_registry", "execution"]),
    (SimpleWorker, "perform_job", ["self", "job", "queue", "execution"]),
    (SimpleWorker, "get_heartbeat_ttl", ["self", "job"]),
    (SimpleWorker, "increment_successful_job_count", ["self", "pipeline"]),
    (SimpleWorker, "increment_total_working_time", ["self", "job_execution_time", "pipeline"]),
    (SimpleWorker, "get_state", ["self"]),
    (Queue, "from_queue_key", ["queue_key", "connection", "job_class", "serializer", "death_penalty_class"]),
    (Job, "fetch", ["id", "connection", "serializer"]),
    (
        Job,
        "_handle_success",
        ["self", "result_ttl", "pipeline", "worker_name", "execution_id", "execution_started_at", "execution_ended_at"],
    ),  # fmt: skip
    (Job, "prepare_for_execution", ["self", "worker_name", "pipeline"]),
    (Job, "cleanup", ["self", "ttl", "pipeline", "remove_from_queue"]),
    (Job, "set_status", ["self", "status", "pipeline"]),
    (Execution, "create", ["job", "ttl", "pipeline", "worker_name"]),
    (Result, "create", ["job", "type", "ttl", "return_value", "exc_string", "worker_name", "pipeline"]),
    (FinishedJobRegistry, "add", ["self", "job", "ttl", "pipeline"]),
    (FailedJobRegistry, "add", ["self", "job", "ttl", "exc_string", "pipeline"]),
]


def test_rq_is_the_version_the_worker_was_written_against():
    assert rq.__version__ == PINNED, (
        f"rq {rq.__version__} is installed; voice_worker/lean.py, worker.py, guarded.py and listening/pool.py "
        f"reach inside rq {PINNED}. Read rq's changes to the methods in this file, adapt them, then update PINNED."
    )


@pytest.mark.parametrize(("owner", "name", "expected"), SIGNATURES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_rq_methods_we_override_or_call_keep_their_parameters(owner, name, expected):
    method = getattr(owner, name, None)
    assert method is not None, f"{owner.__name__}.{name} is gone: voice_worker relies on it"
    params = [p for p in inspect.signature(method).parameters if p not in ("args", "kwargs")]
    assert params[: len(expected)] == expected, f"{owner.__name__}.{name} now takes {params}; we pass {expected}"


def test_the_private_attributes_we_read_exist(connection):
    job = Job(id="contract", connection=connection)
    for attribute in ("_success_callback_name", "_failure_callback_name", "_stopped_callback_name"):
        assert hasattr(job, attribute), f"Job.{attribute} is gone (voice_worker/guarded.py)"
    assert hasattr(job, "repeats_left"), "Job.repeats_left is gone (voice_worker/guarded.py refuses repeats)"


def test_handle_success_still_marks_the_job_finished_in_the_transaction_it_is_given(connection):
    """voice_worker/lean.py relies on `_handle_success` for the job's status (it sets no status itself
    when a result is kept)."""
    job = Job.create("os.getpid", id=f"contract-{uuid.uuid4().hex[:8]}", connection=connection)
    job.save()
    try:
        with connection.pipeline() as pipe:
            job._handle_success(60, pipeline=pipe, worker_name="contract")
            pipe.execute()
        assert job.get_status(refresh=True) == "finished"
        assert job.get_status(refresh=False) == "finished"
    finally:
        job.delete(delete_dependents=False)


def test_redis_pipelines_still_keep_their_command_stack():
    """queues/_client.py records RQ's enqueue commands on a blocking pipeline and replays them on
    the app's asyncio connection: it reads `Pipeline.command_stack`."""
    assert "command_stack" in inspect.getsource(Pipeline.__init__)
