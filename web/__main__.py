"""`python -m web`: serve the app with uvicorn, logging JSON lines (see `queues.configure_logging`).

The server bounds what one client can hold, which uvicorn's defaults do not (measured: a 128 MB
request head cost 20 s of CPU; 40 connections that never finished their heads stayed open 75 s):

- h11 parses requests, not httptools: h11 refuses a head over COUNCIL_MAX_HEADER_BYTES (431),
  httptools has no limit. WebSockets are unaffected: uvicorn hands an upgrade to its `ws`
  implementation whatever parses the HTTP.
- Neither parser times out a head that never ends, so `BoundedH11` does: a connection whose
  request head is not complete COUNCIL_HEADER_TIMEOUT_S after it opened, or after its last
  response, is closed.
- A connection beyond COUNCIL_MAX_CONNECTIONS (HTTP, WebSocket, or a head still coming) is
  answered 503. uvicorn's own `limit_concurrency` answers in plain text, and lets WebSockets by.
- One client (an IP address) may hold COUNCIL_MAX_CONNECTIONS_PER_CLIENT of them, and
  COUNCIL_MAX_HEADS_PER_CLIENT whose request head is not complete: a connection past either is
  answered 503 and closed at once, so it never counts against the others (1,100 half-sent heads of
  one client had made 90 of 170 other clients' requests fail).

Every refusal is in the app's one error shape.
"""

import argparse
import asyncio
import http
import json
import logging
import os
import re
import sys
from collections import Counter
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from council import Budgets, ConfigError
from queues import SettingsError, configure_logging
from shared_schemas import ErrorCode

from .app import create_app
from .errors import error_body
from .settings import AppSettings, ServerSettings

log = logging.getLogger("web.server")

# Where a request head ends: a blank line (h11 takes a bare LF for CRLF too).
HEAD_END = re.compile(rb"\r?\n\r?\n")


def bounded_h11(limits: ServerSettings) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a time limit on each request head and a cap on connections."""

    busy = (
        ErrorCode.TOO_MANY_CONNECTIONS,
        f"The server has {limits.max_connections} connections open, its limit (COUNCIL_MAX_CONNECTIONS). "
        "Try again in a few seconds.",
    )

    async def too_many(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps(error_body(*busy)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(b"retry-after", b"5"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    too_large = (
        ErrorCode.HEADERS_TOO_LARGE,
        f"The request's headers are over {limits.max_header_bytes} bytes (COUNCIL_MAX_HEADER_BYTES): send fewer "
        "or shorter ones.",
    )

    def per_client(what: str, limit: int, name: str) -> tuple[str, str]:
        return (
            ErrorCode.TOO_MANY_CONNECTIONS,
            f"This client has {limit} {what} open, its limit ({name}). Finish or close some and try again.",
        )

    clients: Counter[str] = Counter()  # connections open, by client address
    heads: Counter[str] = Counter()  # of them, those whose request head is still coming

    class BoundedH11(H11Protocol):
        # Reaches into uvicorn's H11Protocol (0.54): the methods overridden here, and its `conn`
        # (h11), `transport`, `connections` and per-connection `app`. tests/web/test_http_limits.py
        # runs a real `python -m web` and fails, limit by limit, if an upgrade moves them.
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0  # received since the request head began
        _over_limit = False
        _client: str | None = None
        _head_open = False

        # (uvicorn narrows asyncio's BaseTransport to a Transport here, as its own H11Protocol does)
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            client = self._client = str(peer[0]) if isinstance(peer, tuple) else ""
            clients[client] += 1
            if clients[client] > limits.max_connections_per_client:
                log.info("refusing a connection: its client has %d open", clients[client] - 1)
                return self._answer(
                    503,
                    *per_client("connections", limits.max_connections_per_client, "COUNCIL_MAX_CONNECTIONS_PER_CLIENT"),
                )
            if heads[client] >= limits.max_heads_per_client:
                log.info("refusing a connection: its client has %d request heads unfinished", heads[client])
                return self._answer(
                    503, *per_client("unfinished requests", limits.max_heads_per_client, "COUNCIL_MAX_HEADS_PER_CLIENT")
                )
            if len(self.connections) > limits.max_connections:
                log.warning("refusing a connection: %d open (COUNCIL_MAX_CONNECTIONS)", len(self.connections) - 1)
                self._over_limit = True
                self.app = too_many  # what uvicorn runs for this connection's requests
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_done()
            self._client_gone()
            super().connection_lost(exc)

        def _client_gone(self) -> None:
            if self._client is not None:
                clients[self._client] -= 1
                if clients[self._client] <= 0:
                    del clients[self._client]
                self._client = None

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:  # a request head is coming
                self._head_bytes += len(data)
                # h11 checks only a head still incomplete after a read: one read can bring more.
                if self._head_bytes > limits.max_header_bytes and self._head_too_large(data):
                    return self._answer(431, *too_large)
            super().data_received(data)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a whole head came (or the connection failed)
                self._head_done()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._await_head()  # the next request's

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            if self._over_limit:
                return self._answer(503, *busy)
            super().handle_websocket_upgrade(event)
            # The socket is the WebSocket protocol's now, and this one hears no connection_lost:
            # the client's count goes down when the WebSocket's connection goes.
            websocket = self.transport.get_protocol()
            lost = websocket.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                self._client_gone()
                lost(exc)

            websocket.connection_lost = connection_lost  # type: ignore[method-assign]  # wrapped on this instance only

        def send_400_response(self, msg: str) -> None:
            # h11 refused the head: over its limit (h11_max_incomplete_event_size), or malformed.
            if len(self.conn.trailing_data[0]) > limits.max_header_bytes:
                return self._answer(431, *too_large)
            self._answer(
                400, ErrorCode.BAD_REQUEST, "The request is not valid HTTP/1.1: send a request line and headers."
            )

        def _head_too_large(self, data: bytes) -> bool:
            # Run once a head passes the limit in bytes received: a read may also hold a body.
            pending = self.conn.trailing_data[0] + data
            return HEAD_END.search(pending, 0, limits.max_header_bytes + 4) is None

        def _await_head(self) -> None:
            self._head_done()
            self._head_bytes = len(self.conn.trailing_data[0])  # pipelined, already here
            self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_late)
            if self._client is not None:
                self._head_open = True
                heads[self._client] += 1

        def _head_done(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            if self._head_open and self._client is not None:
                self._head_open = False
                heads[self._client] -= 1
                if heads[self._client] <= 0:
                    del heads[self._client]

        def _head_late(self) -> None:
            self._head_timer = None
            self._head_done()
            if not self.transport.is_closing():
                log.info("closing a connection: no whole request head within %g s", limits.header_timeout_s)
                self.transport.close()

        def _answer(self, status: int, code: str, message: str) -> None:
            """Answer `status` in the one error shape and close, whatever state h11 is in (it
            sends no response before it has a whole request)."""
            body = json.dumps(error_body(code, message)).encode()
            head = (
                f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
            self.transport.close()

    return BoundedH11


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m web")
    parser.add_argument("--host", help="default: COUNCIL_HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, help="default: COUNCIL_PORT, else 8000")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--check", action="store_true", help="check the settings, say what is wrong, and exit")
    args = parser.parse_args()
    configure_logging(args.log_level)
    environ = dict(os.environ)  # the flags say what COUNCIL_HOST and COUNCIL_PORT would
    if args.host is not None:
        environ["COUNCIL_HOST"] = args.host
    if args.port is not None:
        environ["COUNCIL_PORT"] = str(args.port)
    try:
        settings = AppSettings.from_env(environ)
        settings.queues.check_credentials()
        # The council's budgets, members and prices: refused here in one line, not by a traceback
        # in a JSON log line once uvicorn has started.
        Budgets.check(settings.council)
    except (SettingsError, ConfigError) as exc:
        sys.exit(f"web: cannot start: {exc}")
    if args.check:
        return
    server = settings.server
    uvicorn.run(
        create_app(settings),
        host=server.host,
        port=server.port,
        http=bounded_h11(server),
        h11_max_incomplete_event_size=server.max_header_bytes,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
