"""Prometheus metrics: jobs by type and outcome, latencies, queue depths, connected sessions, and
what the council spends (counted as this process records it; today's totals from the ledger)."""

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from rq import Queue
from rq.serializers import JSONSerializer
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queues import Ledger

from .services import services

REGISTRY = CollectorRegistry()
SESSIONS = Gauge("council_sessions", "Chat WebSockets connected to this process.", registry=REGISTRY)
BAD_FRAMES = Counter("council_bad_frames_total", "Client frames refused, by error code.", ["code"], registry=REGISTRY)
JOBS = Counter(
    "council_jobs_total", "Jobs this process waited on, by type and outcome.", ["type", "outcome"], registry=REGISTRY
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
SPEND_TODAY = Gauge(
    "council_spend_today",
    "Spent today (UTC) in the ledger, workers' jobs included, by user and unit.",
    ["user", "unit"],
    registry=REGISTRY,
)


def _collect_queues(request: Request) -> None:
    s = services(request)
    for name in s.settings.queues.queue_names:
        queue = Queue(name, connection=s.redis, serializer=JSONSerializer)
        QUEUE_DEPTH.labels(name).set(queue.count)
        for registry, reg in (
            ("started", queue.started_job_registry),
            ("finished", queue.finished_job_registry),
            ("failed", queue.failed_job_registry),
        ):
            QUEUE_JOBS.labels(name, registry).set(reg.count)
    ledger = Ledger(s.redis, s.settings.queues.key_prefix)
    for user in ledger.names("user"):
        spent = ledger.usage("user", user).spent
        for unit in ("tokens", "seconds", "money"):
            SPEND_TODAY.labels(user, unit).set(getattr(spent, unit))


async def metrics_endpoint(request: Request) -> Response:
    await asyncio.to_thread(_collect_queues, request)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics_endpoint)]
