"""What /metrics tells, and to whom, from a real uvicorn server.

Per-user series (today's spending by user) go to operators only; everyone else gets the rest.
Job counts by type and outcome are RQ's own: after good and failing jobs run by a real worker,
`council_jobs_ended` sums to RQ's finished and failed registries, queue by queue.
"""

import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from billing import Charge, Ledger
from council import CouncilSettings
from queues import JobClient
from shared_schemas import PingJob, SynthesisJob, TranscriptionJob
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(120)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric `name`, by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def spending_users(text: str) -> set[str]:
    return {dict(labels)["user"] for labels in samples(text, "council_spend_today")}


def test_only_operators_see_what_each_user_spent(settings, connection, serve):
    tag = uuid.uuid4().hex[:8]
    alice, root = f"alice-{tag}", f"root-{tag}"
    users = {alice: f"tok-a-{tag}", root: f"tok-r-{tag}"}
    ledger = Ledger(connection)
    for user in users:
        ledger.debit(Charge(kind="llm", item="llama3.2", user=user, member="Ada", input_tokens=70, output_tokens=30))
    app = create_app(
        AppSettings(queues=settings, responder="echo", api_users=users, council=CouncilSettings(operators=(root,)))
    )
    with serve(app) as url:
        as_alice = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {users[alice]}"}, timeout=10)
        as_root = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {users[root]}"}, timeout=10)
    assert as_alice.status_code == as_root.status_code == 200
    assert "council_spend_today" not in as_alice.text and 'user="' not in as_alice.text
    assert "council_queue_depth" in as_alice.text  # the rest is everyone's
    assert {alice, root} <= spending_users(as_root.text)
    assert samples(as_root.text, "council_spend_today")[(("unit", "tokens"), ("user", alice))] == 100


def test_without_tokens_the_one_user_is_an_operator_and_sees_it_all(settings, connection, serve):
    user = "anonymous"
    Ledger(connection).debit(Charge(kind="tool", item="calculator", user=user, calls=1))
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        assert user in spending_users(httpx.get(f"{url}/metrics", timeout=10).text)


def registries(connection, settings) -> dict[tuple[str, str], int]:
    counts = {}
    for name in settings.queue_names:
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        counts[name, "finished"] = queue.finished_job_registry.count
        counts[name, "failed"] = queue.failed_job_registry.count
    return counts


def ended(text: str) -> dict[tuple[str, str, str], float]:
    """council_jobs_ended by (queue, type, outcome)."""
    return {(d["queue"], d["type"], d["outcome"]): v for d, v in
            ((dict(labels), v) for labels, v in samples(text, "council_jobs_ended").items())}  # fmt: skip


@pytest.mark.usefixtures("worker")
def test_job_counts_by_type_and_outcome_are_rqs_after_good_and_failing_jobs(settings, connection, serve):
    session = f"metrics-{uuid.uuid4().hex[:10]}"
    jobs = [PingJob(session_id=session, job_id=f"{session}-ping-{i}") for i in range(3)]
    jobs += [
        SynthesisJob(session_id=session, job_id=f"{session}-say-{i}", text="Hello.", voice="max") for i in range(2)
    ]
    jobs += [  # failing, each for a reason of its input: not retried, so they end at once
        SynthesisJob(session_id=session, job_id=f"{session}-unknown", text="Hello.", voice="nobody"),
        SynthesisJob(session_id=session, job_id=f"{session}-empty", text="\x00", voice="max"),
        TranscriptionJob(session_id=session, job_id=f"{session}-gone", audio_key=f"{session}-no-such-blob"),
    ]
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        before = ended(httpx.get(f"{url}/metrics", timeout=10).text)
        client = JobClient(settings, connection)
        for job in jobs:
            client.enqueue(job)
        deadline = time.monotonic() + 90
        while True:
            statuses = [
                Job.fetch(j.job_id, connection=connection, serializer=JSONSerializer).get_status() for j in jobs
            ]
            if all(s in ("finished", "failed") for s in statuses):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.1)
        text = httpx.get(f"{url}/metrics", timeout=10).text
    after = ended(text)
    realtime = settings.realtime_queue
    grew = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert grew == {
        (realtime, "ping", "finished"): 3,
        (realtime, "synthesis", "finished"): 2,
        (realtime, "synthesis", "failed"): 2,
        (realtime, "transcription", "failed"): 1,
    }
    # Queue by queue, the types sum to what RQ's registries hold, and so does council_queue_jobs.
    held = registries(connection, settings)
    queue_jobs = {(d["queue"], d["registry"]): v for d, v in
                  ((dict(labels), v) for labels, v in samples(text, "council_queue_jobs").items())}  # fmt: skip
    for (queue, outcome), count in held.items():
        assert sum(v for (q, _, o), v in after.items() if (q, o) == (queue, outcome)) == count, (queue, outcome)
        assert queue_jobs[queue, outcome] == count
    assert held[realtime, "finished"] >= 5 and held[realtime, "failed"] >= 3
