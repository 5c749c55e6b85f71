"""`/openapi.json` against the app itself: every HTTP route documented, and what the routes
really answer (with no token, with Redis away, with bad input) is what the document says, in the
one error shape."""

import re
import socket
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from queues import QueueSettings
from web.app import create_app
from web.auth import TokenAuth
from web.openapi import SPEC
from web.settings import AppSettings, ServerSettings

pytestmark = pytest.mark.timeout(60)

# Routes the document leaves out on purpose, and why.
NOT_DOCUMENTED = {
    "/ws/chat": "a WebSocket: OpenAPI cannot describe its frames; web/PROTOCOL.md does",
    "/static": "the pages' own files (scripts, styles), not an API",
    "/docs/static": "Swagger UI's own files (from the swagger-ui-py package), not an API",
}
METHODS = ("get", "put", "post", "delete", "patch")


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, item in SPEC["paths"].items() for method, op in item.items() if method in METHODS
    ]


def resolve(ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    return SPEC["components"]["schemas"][ref.rpartition("/")[2]] if ref else ref_or_schema


def example_url(path: str, op: dict[str, Any]) -> str:
    """`path` with each path parameter replaced by its documented example."""
    for parameter in op.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", parameter["example"])
    assert "{" not in path, f"{path}: a path parameter without an example"
    return path


def example_request(client: httpx.Client, path: str, method: str, op: dict[str, Any]) -> httpx.Response:
    """A request the document says is well formed."""
    url = example_url(path, op)
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return client.request(method, url, json=content["application/json"]["example"])
    if "multipart/form-data" in content:
        return client.request(method, url, files=[("files", ("a.wav", b"RIFF" + b"\0" * 100))])
    return client.request(method, url)


def assert_documented(response: httpx.Response, path: str, method: str) -> dict[str, Any]:
    """The status is one the document lists for this operation; an error is in the one shape."""
    documented = SPEC["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered {status}, not documented: {response.text[:200]}"
    schema = documented[status].get("content", {}).get("application/json", {}).get("schema", {})
    if response.status_code >= 400 and schema.get("$ref", "").endswith("/Error"):
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return documented[status]


def test_every_route_of_the_app_is_documented(settings):
    app = create_app(AppSettings(queues=settings))
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, (Mount, WebSocketRoute)):
            assert route.path in NOT_DOCUMENTED, f"{route.path}: document it, or say in NOT_DOCUMENTED why not"
            continue
        assert isinstance(route, Route), route
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD":
                found.add((path, method.lower()))
    documented = {(path, method) for path, method, _ in operations()}
    assert found - documented == set(), "routes missing from /openapi.json"
    assert documented - found == set(), "/openapi.json documents routes the app does not have"


def test_every_operation_lists_its_error_responses_in_the_one_shape():
    assert SPEC["components"]["schemas"]["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/JobError"}
    for path, method, op in operations():
        responses = op["responses"]
        where = f"{method.upper()} {path}"
        # 401 exactly where web.auth asks for a token (when tokens are configured).
        assert ("401" in responses) is not TokenAuth.public(path), where
        assert "500" in responses, where
        for status, response in responses.items():
            if int(status) >= 400 and path != "/health":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{where} {status}"
        if "503" in responses and path != "/health":
            assert "queue_unavailable" in responses["503"]["description"], where


def test_without_a_token_the_api_answers_401_as_documented(settings, serve):
    with serve(create_app(AppSettings(queues=settings, api_token="secret"))) as url, httpx.Client(base_url=url) as c:
        for path, method, op in operations():
            response = example_request(c, path, method, op)
            assert_documented(response, path, method)
            assert (response.status_code == 401) is not TokenAuth.public(path), (path, response.status_code)


def test_with_redis_away_the_api_answers_503_queue_unavailable_as_documented(serve):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    app = create_app(AppSettings(queues=QueueSettings(redis_url=dead), responder="echo"))
    with serve(app) as url, httpx.Client(base_url=url, timeout=20) as c:
        for path, method, op in operations():
            response = example_request(c, path, method, op)
            assert_documented(response, path, method)
            if path in ("/", "/batch", "/openapi.json", "/docs"):  # need no Redis
                assert response.status_code == 200, path
                continue
            assert response.status_code == 503, f"{method.upper()} {path} answered {response.status_code}"
            if path != "/health":  # /health answers its report, saying what is down
                assert response.json()["error"]["code"] == "queue_unavailable"
                assert response.headers["retry-after"]


def test_a_foreign_host_or_page_is_refused_as_documented(settings, serve):
    """web.sitecheck answers before the routes: 400 `bad_host` anywhere, 403 `forbidden_origin`
    for a POST from another site's page."""
    app = create_app(AppSettings(queues=settings, server=ServerSettings(allowed_hosts=("council.example",))))
    with serve(app) as url, httpx.Client(base_url=url) as c:
        for path, method, op in operations():
            url_path = example_url(path, op)
            response = c.request(method, url_path, headers={"Host": "evil.example"})
            assert response.json()["error"]["code"] == "bad_host", (path, response.text)
            assert_documented(response, path, method)
            if method == "post":
                response = c.request(method, url_path, headers={"Origin": "http://evil.example"})
                assert response.json()["error"]["code"] == "forbidden_origin", (path, response.text)
                assert_documented(response, path, method)


# Bad input for each operation that takes any: what comes back is documented, in the one shape.
BAD_INPUT = [
    ("post", "/api/transcriptions", {"content": b"x", "headers": {"content-type": "text/plain"}}, 400),
    ("post", "/api/transcriptions", {"files": [("files", ("a.wav", b""))]}, 400),
    ("get", "/api/transcriptions/{batch_id}", {}, 404),
    ("get", "/api/transcriptions/{batch_id}/{job_id}", {"params": {"format": "doc"}}, 400),
    ("get", "/api/transcriptions/{batch_id}/{job_id}", {}, 404),
    ("post", "/api/speech", {"content": b"{", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/api/speech", {"json": {"text": " ", "voice": "max"}}, 422),
    ("post", "/api/speech", {"content": b"x" * 20000, "headers": {"content-type": "application/json"}}, 413),
    ("get", "/api/audio/{session_id}/{name}", {}, 404),
    ("get", "/api/usage", {"params": {"day": "yesterday"}}, 400),
    ("get", "/api/usage", {"params": {"user": "someone-else"}}, 403),
    ("get", "/api/usage/ledger", {"params": {"format": "xml"}}, 400),
]


@pytest.fixture(scope="module")
def alice(settings, serve):
    """A client of the app as alice, who is not an operator."""
    app = create_app(AppSettings(queues=settings, api_users={"alice": "alice-token"}))
    with serve(app) as url, httpx.Client(base_url=url, headers={"Authorization": "Bearer alice-token"}) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "request_args", "status"), BAD_INPUT)
def test_bad_input_is_answered_as_documented(alice, method, path, request_args, status):
    response = alice.request(method, example_url(path, SPEC["paths"][path][method]), **request_args)
    assert response.status_code == status, response.text
    assert_documented(response, path, method)


def test_docs_is_swagger_ui_from_the_app_itself_with_no_cdn(settings, serve):
    with (
        serve(create_app(AppSettings(queues=settings, api_token="secret"))) as url,
        httpx.Client(base_url=url) as c,
    ):
        page = c.get("/docs")  # public, as /openapi.json is: the token goes in its Authorize dialog
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in page.text and "SwaggerUIBundle" in page.text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "loads something from elsewhere"
        for asset in re.findall(r"""(?:src|href)="(/docs/static/[^"]+)\"""", page.text):
            served = c.get(asset)
            assert served.status_code == 200 and len(served.content) > 100, asset
        bundle = c.get("/docs/static/swagger-ui-bundle.js").text
        assert "OpenAPI 3.1" in bundle or "openapi31" in bundle.lower()  # Swagger UI 5 reads our 3.1 document
