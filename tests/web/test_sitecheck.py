"""Cross-site safety, against a real uvicorn server and real HTTP and WebSocket clients.

A foreign Host is refused on every route (DNS rebinding); the chat WebSocket opens only from the
app's own pages, the allowed origins, or clients that send no Origin (not browsers); a page
elsewhere cannot POST, PUT, PATCH or DELETE; and the app with no token serves this machine only.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.routing import Route
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from queues import QueueSettings, SettingsError
from web.app import create_app
from web.settings import LOOPBACK_HOSTS, AppSettings, ServerSettings

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_ORIGIN = "https://council.example.com"
SERVER = ServerSettings(allowed_hosts=(*LOOPBACK_HOSTS, "council.example.com", "*.example.org"),
                        allowed_origins=(ALLOWED_ORIGIN,))  # fmt: skip
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def app(redis_url):
    return create_app(AppSettings(queues=QueueSettings(redis_url=redis_url), responder="echo", server=SERVER))


@pytest.fixture(scope="module")
def base(app, serve):
    with serve(app) as url:
        yield url


@pytest.fixture
def http(base):
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client


def port_of(base: str) -> int:
    port = urlsplit(base).port
    assert port is not None
    return port


def open_chat(base: str, host: str | None = None, **options):
    """The chat WebSocket, asking for `host` (the server's own address by default)."""
    port = port_of(base)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return connect(f"ws://{host or f'127.0.0.1:{port}'}/ws/chat", sock=sock, open_timeout=10, **options)


def assert_ws_refused(base: str, status: int, code: str, **options) -> None:
    with pytest.raises(InvalidStatus) as refused:
        with open_chat(base, **options):
            pass
    response = refused.value.response
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def assert_ws_opens(base: str, **options) -> None:
    with open_chat(base, **options) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session"


# -- Host -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "example.org", ""])
def test_a_foreign_host_is_refused_on_every_route(app, http, base, assert_error, host):
    paths = {"/", "/batch", "/health", "/metrics", "/static/chat.js", "/openapi.json"}
    paths |= {r.path for r in app.routes if isinstance(r, Route) and "{" not in r.path}
    for path in paths:
        body = assert_error(http.get(path, headers={"Host": host}), 400, "bad_host")
        assert "COUNCIL_ALLOWED_HOSTS" in body["message"]
        assert_error(http.post(path, headers={"Host": host}), 400, "bad_host")
    if host:
        assert_ws_refused(base, 400, "bad_host", host=host)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "LocalHost", "[::1]", "council.example.com", "a.b.example.org"]
)
def test_allowed_hosts_are_answered(http, base, host):
    port = port_of(base)
    for named in (host, f"{host}:{port}"):
        assert http.get("/openapi.json", headers={"Host": named}).status_code == 200
    assert_ws_opens(base, host=f"{host}:{port}")


def test_hosts_default_to_loopback_and_the_host_bound():
    assert ServerSettings.from_env({}).hosts == LOOPBACK_HOSTS
    assert ServerSettings.from_env({"COUNCIL_HOST": "10.0.0.5"}).hosts == (*LOOPBACK_HOSTS, "10.0.0.5")
    assert ServerSettings.from_env({"COUNCIL_HOST": "0.0.0.0"}).hosts == LOOPBACK_HOSTS
    configured = ServerSettings.from_env({"COUNCIL_ALLOWED_HOSTS": " Council.Example.com ,*.example.org,"})
    assert configured.hosts == (*LOOPBACK_HOSTS, "council.example.com", "*.example.org")
    assert ServerSettings.from_env({"COUNCIL_ALLOWED_HOSTS": "*"}).hosts == ("*",)
    for bad in ("https://council.example.com", "council.example.com:8000", "a/b"):
        with pytest.raises(SettingsError, match="COUNCIL_ALLOWED_HOSTS"):
            ServerSettings.from_env({"COUNCIL_ALLOWED_HOSTS": bad})
    for bad in ("council.example.com", "https://council.example.com/chat", "null", "ftp://x.example"):
        with pytest.raises(SettingsError, match="COUNCIL_ALLOWED_ORIGINS"):
            ServerSettings.from_env({"COUNCIL_ALLOWED_ORIGINS": bad})


# -- the chat WebSocket ---------------------------------------------------------------------------


def test_the_chat_websocket_opens_from_its_own_pages_allowed_origins_and_non_browsers(base):
    port = port_of(base)
    assert_ws_opens(base)  # no Origin: the Python client, benchmarks, tests
    assert_ws_opens(base, origin=f"http://127.0.0.1:{port}")
    assert_ws_opens(base, origin=f"https://127.0.0.1:{port}")  # behind a TLS proxy that passes the Host
    assert_ws_opens(base, host="chat.example.org", origin="https://chat.example.org")  # its own, by Host
    assert_ws_opens(base, host="chat.example.org:443", origin="https://chat.example.org")
    assert_ws_opens(base, origin=ALLOWED_ORIGIN)  # another origin, allowed


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "http://127.0.0.1:1", "http://localhost", "null", "https://council.example.com.evil"],
)
def test_the_chat_websocket_refuses_a_page_elsewhere_before_the_app_runs(base, origin):
    assert_ws_refused(base, 403, "forbidden_origin", origin=origin)
    # A token changes nothing: a browser's page could hold one too.
    assert_ws_refused(base, 403, "forbidden_origin", origin=origin, additional_headers={"Authorization": "Bearer x"})


# -- state-changing requests ----------------------------------------------------------------------


def unsafe_routes(app) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, Route):
            path = route.path.replace("{", "").replace("}", "").replace(":path", "")
            found += [(method, path) for method in sorted(route.methods or ()) if method in UNSAFE]
    assert ("POST", "/api/speech") in found and ("POST", "/api/transcriptions") in found
    return found


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_page_elsewhere_cannot_change_anything(app, http, assert_error, headers):
    for method, path in unsafe_routes(app):
        body = assert_error(http.request(method, path, headers=headers, content=b"{}"), 403, "forbidden_origin")
        assert "COUNCIL_ALLOWED_ORIGINS" in body["message"]


def test_own_pages_allowed_origins_and_bearer_tokens_may_change_things(http, base, assert_error):
    own = f"http://127.0.0.1:{port_of(base)}"
    for headers in [
        {},  # curl, the Python client
        {"Origin": own, "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
        {"Origin": ALLOWED_ORIGIN, "Sec-Fetch-Site": "cross-site"},
        # Not ambient: a browser sends one cross-site only after a CORS preflight, never granted here.
        {"Origin": "http://evil.example", "Authorization": "Bearer anything"},
    ]:
        # Past the check, the route itself answers: the body is not a speech request.
        assert_error(http.post("/api/speech", headers=headers, content=b"{}"), 400, "invalid_request")
    # Reading is not changing: a cross-site GET goes on (no CORS: the page cannot read the answer).
    assert http.get("/openapi.json", headers={"Origin": "http://evil.example"}).status_code == 200
    assert http.options("/api/speech", headers={"Origin": "http://evil.example"}).status_code == 405


# -- no token: this machine only ------------------------------------------------------------------


def test_without_a_token_the_app_will_not_listen_beyond_this_machine():
    env = {"PATH": "/usr/bin:/bin", "COUNCIL_REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run(
        [sys.executable, "-m", "web", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert "COUNCIL_API_TOKEN" in done.stderr and "COUNCIL_ALLOW_OPEN=1" in done.stderr, done.stderr
    for host in ("0.0.0.0", "::", "10.0.0.5", "council.example.com"):
        with pytest.raises(SettingsError, match="COUNCIL_API_TOKEN"):
            AppSettings.from_env({"COUNCIL_HOST": host})
    for env in (
        {"COUNCIL_HOST": "127.0.0.1"},
        {"COUNCIL_HOST": "localhost"},
        {"COUNCIL_HOST": "::1"},
        {"COUNCIL_HOST": "127.0.0.2"},
        {"COUNCIL_HOST": "0.0.0.0", "COUNCIL_API_TOKEN": "secret"},
        {"COUNCIL_HOST": "0.0.0.0", "COUNCIL_API_TOKENS": "alice:secret"},
        {"COUNCIL_HOST": "0.0.0.0", "COUNCIL_ALLOW_OPEN": "1"},
    ):
        assert AppSettings.from_env(env).server.host == env["COUNCIL_HOST"]  # no error
