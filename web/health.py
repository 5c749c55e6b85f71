"""Is the system able to serve? Redis reachable, the event hub subscribed, workers alive per queue,
queue depths."""

import asyncio
import time
from typing import Any

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from queues import EventHub, QueueSettings, in_thread, live_workers

# A Redis that accepts connections but does not answer (paused, swapping) must not hang /health.
CHECK_TIMEOUT_S = 3.0


def check(settings: QueueSettings, connection: redis.Redis) -> tuple[bool, dict[str, Any]]:
    """(healthy, report). Healthy means Redis answers and some worker serves the realtime queue."""
    try:
        connection.ping()
    except redis.exceptions.RedisError as exc:
        return False, {"redis": f"unreachable: {exc}", "queues": {}}
    report: dict[str, Any] = {"redis": "ok", "queues": {}}
    for name in settings.queue_names:
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        report["queues"][name] = {"depth": queue.count, "workers": live_workers(connection, name)}
    healthy = report["queues"][settings.realtime_queue]["workers"] > 0
    return healthy, report


async def acheck(
    settings: QueueSettings, connection: redis.Redis, hub: EventHub | None = None
) -> tuple[bool, dict[str, Any]]:
    """`check`, off the event loop and bounded in time; with `hub`, also whether this process's
    event hub is subscribed (after an outage it reconnects by itself, with backoff)."""
    try:
        healthy, report = await asyncio.wait_for(in_thread(check, settings, connection), CHECK_TIMEOUT_S)
    except TimeoutError:
        healthy, report = False, {"redis": f"unreachable: no answer within {CHECK_TIMEOUT_S:g} s", "queues": {}}
    if hub is not None:
        if hub.outage_since is None:
            report["events"] = "ok"
        else:
            report["events"] = f"reconnecting to Redis for {time.monotonic() - hub.outage_since:.0f} s"
            healthy = False
    return healthy, report
