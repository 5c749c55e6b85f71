"""Prometheus metrics: jobs by type and outcome, latencies, queue depths, connected sessions, and
what the council spends (counted as this process records it; today's totals from the ledger).

Two kinds of job counts, each saying what it counts: `council_jobs_ended` is every job RQ keeps
as finished or failed, read from RQ's registries at each scrape (so its sums are RQ's counts);
`council_jobs_total` counts the jobs of chat turns this process waited on, with their latency.

Per-user series (`council_spend_today{user}`) go to operators only (COUNCIL_OPERATORS): another
user's spending is theirs, as in /api/usage.
"""

import threading
import typing
from collections import Counter as Tally
from collections.abc import Iterable

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing import AsyncLedger
from queues import in_thread
from shared_schemas import JobPayload

from .auth import user_of
from .services import Services, services

REGISTRY = CollectorRegistry()
SESSIONS = Gauge("council_sessions", "Chat WebSockets connected to this process.", registry=REGISTRY)
BAD_FRAMES = Counter("council_bad_frames_total", "Client frames refused, by error code.", ["code"], registry=REGISTRY)
JOBS = Counter(
    "council_jobs_total",
    "Jobs of chat turns this process waited on, by type and outcome (every job: council_jobs_ended).",
    ["type", "outcome"],
    registry=REGISTRY,
)
JOB_LATENCY = Histogram(
    "council_job_seconds",
    "From enqueue to the job's last event, as this process saw it.",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("council_queue_depth", "Jobs waiting, by queue.", ["queue"], registry=REGISTRY)
QUEUE_JOBS = Gauge(
    "council_queue_jobs", "Jobs in RQ's registries, by queue and registry.", ["queue", "registry"], registry=REGISTRY
)
SPEND = Counter(
    "council_spend_total",
    "What this process recorded in the ledger (LLM calls, tools), by kind, member and unit (tokens, seconds, money).",
    ["kind", "member", "unit"],
    registry=REGISTRY,
)
BUDGET_REFUSALS = Counter(
    "council_budget_refusals_total",
    "Turns, calls and jobs a budget refused, by scope and unit.",
    ["scope", "unit"],
    registry=REGISTRY,
)
BUDGET_DOWNGRADES = Counter(
    "council_budget_downgrades_total",
    "Council turns sent down the fast path: the budget left was short.",
    registry=REGISTRY,
)
# Job types, as the app's payloads name them (`kind`); a job RQ holds that none of ours made is "other".
KINDS = tuple(sorted(model.model_fields["kind"].default for model in typing.get_args(JobPayload)))


FETCH_BATCH = 500


class JobTypes:
    """Each ended job's type, read from RQ once and remembered while RQ keeps the job."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def of(self, connection: redis.Redis, job_ids: list[str]) -> list[str]:
        with self._lock:
            unknown = [job_id for job_id in job_ids if job_id not in self._known]
        # Only jobs that ended since the last scrape, after the first (then in bounded round trips).
        for start in range(0, len(unknown), FETCH_BATCH):
            batch = unknown[start : start + FETCH_BATCH]
            jobs = Job.fetch_many(batch, connection=connection, serializer=JSONSerializer)
            found = {job.id: _kind(job) for job in jobs if job is not None}
            with self._lock:
                self._known.update(found)
        with self._lock:
            return [self._known.get(job_id, "other") for job_id in job_ids]

    def keep(self, job_ids: Iterable[str]) -> None:
        """Forget the jobs RQ no longer keeps."""
        kept = set(job_ids)
        with self._lock:
            self._known = {job_id: kind for job_id, kind in self._known.items() if job_id in kept}


def _kind(job: Job) -> str:
    kind = job.meta.get("kind")
    return str(kind) if kind in KINDS else "other"


JOB_TYPES = JobTypes()


def _collect(s: Services) -> bytes:
    """This scrape's text: the process's metrics and RQ's registries (blocking: RQ's API). Series
    read from Redis are made afresh each time, so none goes stale."""
    scrape = CollectorRegistry()
    ended = Gauge(
        "council_jobs_ended",
        "Jobs RQ keeps as finished (for COUNCIL_RESULT_TTL_S) or failed (COUNCIL_FAILURE_TTL_S), "
        "by queue, type and outcome: the counts of RQ's registries.",
        ["queue", "type", "outcome"],
        registry=scrape,
    )
    seen: list[str] = []
    for name in s.settings.queues.queue_names:
        queue = Queue(name, connection=s.redis, serializer=JSONSerializer)
        QUEUE_DEPTH.labels(name).set(queue.count)
        QUEUE_JOBS.labels(name, "started").set(queue.started_job_registry.count)
        for outcome, registry in (("finished", queue.finished_job_registry), ("failed", queue.failed_job_registry)):
            job_ids = registry.get_job_ids()
            QUEUE_JOBS.labels(name, outcome).set(len(job_ids))
            for kind in KINDS:
                ended.labels(name, kind, outcome)  # a type with none ended reads 0, not absent
            for kind, count in Tally(JOB_TYPES.of(s.redis, job_ids)).items():
                ended.labels(name, kind, outcome).set(count)
            seen += job_ids
    JOB_TYPES.keep(seen)
    return generate_latest(REGISTRY) + generate_latest(scrape)


async def _spend_today(s: Services) -> CollectorRegistry:
    """Today's spending by user (operators only), from the ledger in one round trip per read."""
    registry = CollectorRegistry()
    spend_today = Gauge(
        "council_spend_today",
        "Spent today (UTC) in the ledger, workers' jobs included, by user and unit (operators only).",
        ["user", "unit"],
        registry=registry,
    )
    ledger = AsyncLedger(s.aredis, s.settings.queues.key_prefix)
    users = await ledger.names("user")
    for user, usage in zip(users, await ledger.usages([("user", user) for user in users]), strict=True):
        for unit in ("tokens", "seconds", "money"):
            spend_today.labels(user, unit).set(getattr(usage.spent, unit))
    return registry


async def metrics_endpoint(request: Request) -> Response:
    s = services(request)
    operator = user_of(request) in s.settings.council.operators
    text = await in_thread(_collect, s)
    if operator:
        text += generate_latest(await _spend_today(s))
    return Response(text, media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics_endpoint)]
