"""The parts of the app's dependencies we reach inside, as we rely on them: an upgrade fails here
first, naming what moved. Each is pinned exactly in pyproject.toml.

- starlette: web/batch.py subclasses `MultiPartParser` (its part hooks, `_current_part`) to cap
  each file while it streams in.
- uvicorn and h11: web/__main__.py subclasses uvicorn's `H11Protocol` to time-limit request heads
  and cap connections (h11 has neither), using its `conn`, `transport`, `connections`, `app`,
  `loop` and the h11 connection's `their_state` and `trailing_data`.
- redis-py: queues/_client.py replays the commands RQ records on a pipeline (`command_stack`).
"""

import inspect

import h11
import redis
import starlette
import uvicorn
from starlette.formparsers import MultiPartParser
from uvicorn.protocols.http.h11_impl import H11Protocol

PINNED = {"starlette": "1.10.0", "uvicorn": "0.54.0", "h11": "0.16.0", "redis": "8.1.0"}


def test_the_versions_we_wrote_against():
    found = {"starlette": starlette.__version__, "uvicorn": uvicorn.__version__, "h11": h11.__version__}
    found["redis"] = redis.__version__
    moved = {name: (found[name], want) for name, want in PINNED.items() if found[name] != want}
    assert not moved, f"installed vs written against: {moved}; check the hooks listed in this file, then update PINNED"


def test_starlettes_multipart_hooks_are_there():
    for hook in ("on_part_begin", "on_part_data", "on_headers_finished", "parse"):
        assert hasattr(MultiPartParser, hook), f"MultiPartParser.{hook} is gone (web/batch.py)"
    assert "_current_part" in inspect.getsource(MultiPartParser), "MultiPartParser._current_part is gone (web/batch.py)"
    params = list(inspect.signature(MultiPartParser.__init__).parameters)
    assert params[:3] == ["self", "headers", "stream"] and {"max_files", "max_fields"} <= set(params)


def test_uvicorns_h11_protocol_hooks_are_there():
    for hook in ("connection_made", "connection_lost", "data_received", "handle_events", "on_response_complete",
                 "handle_websocket_upgrade", "send_400_response"):  # fmt: skip
        assert hasattr(H11Protocol, hook), f"H11Protocol.{hook} is gone (web/__main__.py)"
    source = inspect.getsource(H11Protocol)
    for attribute in ("self.conn", "self.transport", "self.connections", "self.app", "self.loop"):
        assert attribute in source, f"H11Protocol no longer has {attribute} (web/__main__.py)"
    connection = h11.Connection(h11.SERVER)
    assert connection.their_state is h11.IDLE and isinstance(connection.trailing_data, tuple)


def test_redis_pipelines_keep_their_command_stack():
    assert "command_stack" in inspect.getsource(redis.client.Pipeline.__init__)
