"""The app's services open and close through an exit stack (issue #25): a step of `Services.open`
that fails closes what the steps before it opened, and a step of `close` that fails does not keep
the later ones from running. Each step is made to fail in turn, after doing its work, against a
real Redis; the process's TCP connections to that Redis are counted (from /proc) before and after,
and the app's background tasks must be gone."""

import asyncio
import functools
import inspect
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio

from council import ConfigError, EchoResponder
from queues import EventHub, QueueSettings
from web import services as services_module
from web.open_turns import OpenTurns
from web.services import Services
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(60)
TASKS = {"event-hub-reader", "open-turns"}


class Injected(Exception):
    pass


def _sockets_to(port: int) -> int:
    """This process's established TCP connections to `port` on this machine."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if int(remote.rsplit(":", 1)[1], 16) == port and state == "01" and inode in inodes:
                count += 1
    return count


def _failing_after(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, ours: list[object]) -> None:
    """`owner.name` does its work, then raises `Injected` (once): on the services' own clients only
    (a client of another test, collected meanwhile, closes as it would)."""
    original = getattr(owner, name)
    fired = []

    def fail(self: object) -> None:
        if owner in (redis.Redis, redis.asyncio.Redis) and not any(self is client for client in ours):
            return
        if not fired:
            fired.append(True)
            raise Injected(f"{owner.__name__}.{name}")

    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            await original(self, *args, **kwargs)
            fail(self)

    else:

        @functools.wraps(original)
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            original(self, *args, **kwargs)
            fail(self)

    monkeypatch.setattr(owner, name, wrapped)


def _connected(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The clients the services open, noted; the blocking one has a connection from the start (it
    connects lazily)."""
    ours: list[object] = []
    original, make_async = QueueSettings.connect, services_module._async_client

    def connect(self: QueueSettings) -> redis.Redis:
        client = original(self)
        client.ping()
        ours.append(client)
        return client

    def async_client(settings: AppSettings) -> redis.asyncio.Redis:
        ours.append(client := make_async(settings))
        return client

    monkeypatch.setattr(QueueSettings, "connect", connect)
    monkeypatch.setattr(services_module, "_async_client", async_client)
    return ours


async def _settled(port: int) -> tuple[int, set[str]]:
    for _ in range(5):
        await asyncio.sleep(0)
    running = {t.get_name() for t in asyncio.all_tasks() if not t.done()} & TASKS
    return _sockets_to(port), running


def _responder_failing(aconn: redis.asyncio.Redis) -> EchoResponder:
    raise ConfigError("members.toml names no chair.")  # the way a bad members file fails


OPEN_STEPS = {
    "responder": None,
    "hub.start": (EventHub, "start"),
    "open_turns.start": (OpenTurns, "start"),
}
CLOSE_STEPS = {
    "open_turns.stop": (OpenTurns, "stop"),
    "hub.close": (EventHub, "close"),
    "aredis.aclose": (redis.asyncio.Redis, "aclose"),
    "redis.close": (redis.Redis, "close"),
}


@pytest.mark.parametrize("step", sorted(OPEN_STEPS))
def test_a_step_of_open_that_fails_closes_what_was_opened(own, monkeypatch, step):
    port = urlsplit(own.redis_url).port
    assert port is not None
    ours = _connected(monkeypatch)
    if (target := OPEN_STEPS[step]) is not None:
        _failing_after(monkeypatch, *target, ours)
    responder = _responder_failing if step == "responder" else (lambda _: EchoResponder())

    async def run() -> tuple[int, tuple[int, set[str]]]:
        before = _sockets_to(port)
        with pytest.raises((Injected, ConfigError)):
            await Services.open(AppSettings(queues=own), make_responder=responder)
        return before, await _settled(port)

    before, (after, running) = asyncio.run(run())
    assert after == before, f"{after - before} connection(s) to Redis left open after {step} failed"
    assert not running, running


@pytest.mark.parametrize("step", sorted(CLOSE_STEPS))
def test_a_step_of_close_that_fails_does_not_stop_the_others(own, monkeypatch, step):
    port = urlsplit(own.redis_url).port
    assert port is not None
    ours = _connected(monkeypatch)
    _failing_after(monkeypatch, *CLOSE_STEPS[step], ours)  # before open: the exit stack holds the methods

    async def run() -> tuple[int, int, tuple[int, set[str]]]:
        before = _sockets_to(port)
        services = await Services.open(AppSettings(queues=own), make_responder=lambda _: EchoResponder())
        await services.aredis.ping()
        opened = _sockets_to(port)
        with pytest.raises(Injected):
            await services.close()
        return before, opened, await _settled(port)

    before, opened, (after, running) = asyncio.run(run())
    assert opened >= before + 3  # the blocking client, the hub's pub/sub, a pooled async connection
    assert after == before, f"{after - before} connection(s) to Redis left open after {step} failed"
    assert not running, running
