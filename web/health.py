"""Is the system able to serve? Redis reachable, workers alive per queue, queue depths."""

import asyncio
from typing import Any

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from queues import QueueSettings


def check(settings: QueueSettings, connection: redis.Redis) -> tuple[bool, dict[str, Any]]:
    """(healthy, report). Healthy means Redis answers and some worker serves the realtime queue."""
    try:
        connection.ping()
    except redis.exceptions.RedisError as exc:
        return False, {"redis": f"unreachable: {exc}", "queues": {}}
    report: dict[str, Any] = {"redis": "ok", "queues": {}}
    for name in settings.queue_names:
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        workers = Worker.all(connection=connection, queue=queue)
        report["queues"][name] = {"depth": queue.count, "workers": len(workers)}
    healthy = report["queues"][settings.realtime_queue]["workers"] > 0
    return healthy, report


async def acheck(settings: QueueSettings, connection: redis.Redis) -> tuple[bool, dict[str, Any]]:
    return await asyncio.to_thread(check, settings, connection)
