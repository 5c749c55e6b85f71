"""What the web tests share: a real uvicorn server in a thread, the one error shape, and the
chat WebSocket's handshake (a new session, or back to one with its id and resume secret)."""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from starlette.types import ASGIApp


@contextlib.contextmanager
def _serve(app: ASGIApp) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def serve() -> Callable[[ASGIApp], contextlib.AbstractContextManager[str]]:
    """`with serve(app) as url`: the app on a free local port, for clients outside the process."""
    return _serve


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


@pytest.fixture(scope="session")
def assert_error() -> Callable[..., dict]:
    """`assert_error(response, status, code)`: the one error shape, with that status and code."""
    return _assert_error


def _chat_path(hello: dict | None = None, last_event_id: str | None = None, token: str | None = None) -> str:
    params = {}
    if hello is not None:
        params.update(session_id=hello["session_id"], resume=hello["resume"])
    if last_event_id is not None:
        params["last_event_id"] = last_event_id
    if token is not None:
        params["token"] = token
    return "/ws/chat" + (f"?{urlencode(params)}" if params else "")


@pytest.fixture(scope="session")
def chat_path() -> Callable[..., str]:
    """`chat_path()`: /ws/chat for a new session; `chat_path(hello, last_event_id)`: back to the
    session whose `session` frame (the first a new session gets) is `hello`."""
    return _chat_path


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """`chromium(mic_wav, *flags, fake_ui=True)`: a browser whose microphone plays that WAV once
    (tests/web/mic_browser.py)."""
    from tests.web.mic_browser import launcher

    with launcher(tmp_path) as launch:
        yield launch
