"""RQ from the async app. RQ's API is blocking and the app's event loop must never wait on a
socket, so the app calls RQ in one of two ways, both here; everything else it does with Redis is
redis.asyncio, natively (see the README's "Redis from the app").

- `in_thread(call, ...)`: an RQ call that reads or changes jobs (fetch a job, cancel it, count a
  registry, list the workers), run in a thread on the blocking client.
- `send_recorded(pipeline, connection)`: an enqueue. RQ writes a job through commands it puts on a
  pipeline without any I/O; recorded on a blocking client's pipeline, they are sent on the asyncio
  client in one transaction: one round trip on the loop, exactly RQ's keys. (A blocking enqueue costs
  about 0.5 ms of the loop, FACTS.md; one in a thread costs a thread hop per sentence of an answer.)
"""

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
import redis.asyncio

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(*args, **kwargs)`, a blocking RQ call, off the event loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


async def send_recorded(recorded: "redis.client.Pipeline", connection: redis.asyncio.Redis) -> None:
    """Send the commands recorded on `recorded` (never executed) on `connection`, as one transaction."""
    async with connection.pipeline(transaction=True) as pipe:
        for args, options in recorded.command_stack:
            pipe.execute_command(*args, **options)
        await pipe.execute()
