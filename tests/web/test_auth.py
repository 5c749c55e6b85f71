"""Access control: tokens on every route, users, and what each user may read.

Every route of the app (read from its route table, so a new route is covered without touching
this file) refuses a missing or wrong token; only the routes listed in PUBLIC load without one.
Sessions, audio clips and batches belong to the user who made them.
"""

import io
import re
import wave

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from queues import BlobStore, EventPublisher, JobEvents, SettingsError
from shared_schemas import payloads
from web.app import create_app
from web.auth import TokenAuth, user_of
from web.sessions import Sessions
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(60)

# The only paths that answer without a token: the pages, their static files, the API description
# and Swagger UI over it (/docs, whose token goes in its Authorize dialog).
PUBLIC = {"/", "/batch", "/openapi.json", "/static", "/docs", "/docs/static"}
USERS = {"alice": "token-of-alice", "bob": "token-of-bob"}
TOKENS = {"alice": {"Authorization": f"Bearer {USERS['alice']}"}, "bob": {"Authorization": f"Bearer {USERS['bob']}"}}


@pytest.fixture
def app(settings):
    # Batch jobs stay queued: these tests read who may see a batch, not what it says.
    queues = settings.model_copy(update={"batch_queue": "nobody-serves-this"})
    return create_app(AppSettings(queues=queues, responder="echo", api_token="token-of-default", api_users=USERS))


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def concrete(path: str) -> str:
    """A route's path with each parameter filled in."""
    return re.sub(r"{(\w+)(:\w+)?}", lambda m: "abcdefgh12.wav" if m[1] == "name" else "abcdefgh12", path)


def routes(app: Starlette) -> list[tuple[str, str, str]]:
    """(kind, method, path) for every route of the app: HTTP methods, `websocket`, or a mount."""
    found = []
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            found.append(("ws", "websocket", route.path))
        elif isinstance(route, Route):
            found += [("http", method, route.path) for method in sorted(route.methods or {"GET"}) if method != "HEAD"]
        elif isinstance(route, Mount):
            found.append(("mount", "GET", route.path))
        else:
            raise AssertionError(f"a route of a kind this test does not know: {route!r}")
    return found


def assert_ws_refused(client: TestClient, path: str, **kwargs) -> None:
    with client.websocket_connect(path, **kwargs) as ws:
        frame = ws.receive_json()
        assert frame["type"] == "error" and frame["error"]["code"] == "unauthorized" and frame["error"]["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401


def test_every_route_refuses_a_missing_or_wrong_token(app, client, assert_error):
    table = routes(app)
    assert {("ws", "websocket", "/ws/chat"), ("http", "POST", "/api/speech")} <= set(table)
    assert {path for _, _, path in table} >= PUBLIC, "a public route went away: update PUBLIC"
    checked = 0
    for kind, method, route_path in table:
        path = concrete(route_path) if kind != "mount" else f"{route_path}/chat.js"
        if kind == "ws":
            assert_ws_refused(client, path)
            assert_ws_refused(client, f"{path}?token=wrong")
            assert_ws_refused(client, path, headers={"Authorization": "Bearer wrong"})
            assert_ws_refused(client, f"{path}?token={USERS['alice']}x")
            with client.websocket_connect(f"{path}?token={USERS['alice']}") as ws:
                assert ws.receive_json()["type"] == "session"
            with client.websocket_connect(path, headers=TOKENS["bob"]) as ws:
                assert ws.receive_json()["type"] == "session"
            checked += 1
            continue
        if route_path in PUBLIC:
            assert client.request(method, path).status_code != 401, f"{method} {path} is public"
            continue
        for headers, params in [
            ({}, {}),
            ({"Authorization": "Bearer wrong"}, {}),
            ({"Authorization": f"Bearer {USERS['alice'][:-1]}"}, {}),
            ({"Authorization": f"Basic {USERS['alice']}"}, {}),
            ({}, {"token": "wrong"}),
        ]:
            refused = client.request(method, path, headers=headers, params=params)
            assert_error(refused, 401, "unauthorized")
            assert refused.headers["www-authenticate"].startswith("Bearer")
        for user in ("alice", "bob"):
            assert client.request(method, path, headers=TOKENS[user]).status_code != 401, f"{method} {path}"
        assert client.request(method, path, params={"token": "token-of-default"}).status_code != 401
        checked += 1
    assert checked >= 7


def test_each_token_names_its_user():
    async def who(request: Request) -> PlainTextResponse:
        return PlainTextResponse(user_of(request))

    async def ws_who(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(user_of(ws))
        await ws.close()

    routes = [Route("/api/who", who), Route("/", who), WebSocketRoute("/ws", ws_who)]
    tokens = {token: user for user, token in USERS.items()}
    with TestClient(TokenAuth(Starlette(routes=routes), tokens)) as client:
        assert client.get("/api/who", headers=TOKENS["alice"]).text == "alice"
        assert client.get("/api/who", params={"token": USERS["bob"]}).text == "bob"
        assert client.get("/").text == "anonymous"  # a public page, no token
        with client.websocket_connect(f"/ws?token={USERS['bob']}") as ws:
            assert ws.receive_text() == "bob"
    with TestClient(TokenAuth(Starlette(routes=routes), {})) as client:
        assert client.get("/api/who").text == "anonymous"  # no token configured: one user
    with TestClient(Starlette(routes=routes)) as client, pytest.raises(RuntimeError, match="TokenAuth"):
        client.get("/api/who")


def test_a_session_is_resumed_only_by_its_owner_with_its_secret(app, client, settings, connection):
    alice = f"token={USERS['alice']}"
    with client.websocket_connect(f"/ws/chat?{alice}") as ws:
        hello = ws.receive_json()
    session, secret = hello["session_id"], hello["resume"]
    assert session != secret and len(session) >= 32 and len(secret) >= 32
    # Redis keeps the owner and a hash of the secret, for as long as the session's stream.
    record = connection.hgetall(Sessions(settings, None).key(session))
    assert record[b"user"] == b"alice" and secret.encode() not in record[b"resume"]
    assert 0 < connection.ttl(Sessions(settings, None).key(session)) <= settings.stream_ttl_s
    # Something for a thief to read: an event stored in alice's session.
    JobEvents(EventPublisher(settings, connection), session, "job").emit(payloads.Pong())

    attempts = {
        "bob, with alice's id and secret": f"token={USERS['bob']}&session_id={session}&resume={secret}",
        "the default user, with both": f"token=token-of-default&session_id={session}&resume={secret}",
        "alice, with a wrong secret": f"{alice}&session_id={session}&resume={secret[:-2]}xx",
        "alice, with no secret": f"{alice}&session_id={session}",
        "alice, with another session's secret": f"{alice}&session_id={session}&resume={session}",
        "alice, with a session that does not exist": f"{alice}&session_id=A{session[1:]}&resume={secret}",
    }
    for who, query in attempts.items():
        with client.websocket_connect(f"/ws/chat?{query}&last_event_id=0") as ws:
            frame = ws.receive_json()
            assert frame["type"] == "error" and frame["error"]["code"] == "forbidden_session", who
            assert "new one" in frame["error"]["message"]
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()  # nothing of the session's stream came before the close
            assert closed.value.code == 1008, who
    with client.websocket_connect(f"/ws/chat?{alice}&session_id={session}&resume={secret}&last_event_id=0") as ws:
        again = ws.receive_json()
        assert (again["type"], again["session_id"], again["resumed_after"]) == ("session", session, "0")
        assert "resume" not in again
        assert ws.receive_json()["type"] == "pong"  # the stored event, replayed to its owner
    # Each user's new session is its own.
    with client.websocket_connect(f"/ws/chat?token={USERS['bob']}") as ws:
        assert ws.receive_json()["session_id"] != session


@pytest.mark.usefixtures("worker")
def test_audio_is_served_only_to_the_owner_of_its_session(client, settings, connection, assert_error):
    with client.websocket_connect("/ws/chat", headers=TOKENS["alice"]) as ws:
        hello = ws.receive_json()
        ws.send_json({"type": "text", "text": "Only for alice.", "voice": "max"})
        frames = [ws.receive_json()]
        while frames[-1]["type"] != "turn_done":
            frames.append(ws.receive_json())
    audio = [f for f in frames if f["type"] == "audio"]
    url = audio[0]["payload"]["url"]
    assert url.startswith(f"/api/audio/{hello['session_id']}/")
    mine = client.get(url, headers=TOKENS["alice"])
    assert mine.status_code == 200 and mine.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(mine.content)) as w:
        assert w.getnframes() > 0
    assert client.get(url, params={"token": USERS["alice"]}).status_code == 200  # as an <audio> element asks
    assert_error(client.get(url, headers=TOKENS["bob"]), 404, "not_found")
    assert_error(client.get(url, params={"token": "token-of-default"}), 404, "not_found")
    assert_error(client.get(url), 401, "unauthorized")
    # Keys a client makes up: another name in alice's session; alice's clip under bob's session.
    made_up = f"{url.rpartition('/')[0]}/AAAAAAAAAAAAAAAA.wav"
    assert_error(client.get(made_up, headers=TOKENS["alice"]), 404, "not_found")
    with client.websocket_connect("/ws/chat", headers=TOKENS["bob"]) as ws:
        bobs = ws.receive_json()["session_id"]
    stolen = url.replace(hello["session_id"], bobs)
    assert_error(client.get(stolen, headers=TOKENS["bob"]), 404, "not_found")
    # A blob that is not a chat session's (a batch upload, a CLI job) is never served, even when
    # it exists under exactly the key the URL names.
    upload = BlobStore(settings, connection).put("batch-0123456789abcdef", b"RIFF....WAVE", ".wav")
    _, _, owner, name = upload.split(":")
    for user in ("alice", "bob"):
        assert_error(client.get(f"/api/audio/{owner}/{name}", headers=TOKENS[user]), 404, "not_found")


def test_a_batch_is_served_only_to_its_uploader(client, assert_error):
    files = [("files", ("memo.wav", b"RIFF....WAVEfmt ", "audio/wav"))]
    created = client.post("/api/transcriptions", files=files, headers=TOKENS["alice"])
    assert created.status_code == 202, created.text
    status_url, result_url = created.json()["status_url"], created.json()["jobs"][0]["result_url"]
    assert client.get(status_url, headers=TOKENS["alice"]).status_code == 200
    assert_error(client.get(result_url, headers=TOKENS["alice"]), 409, "not_ready")  # queued, and hers
    for other in (TOKENS["bob"], {"Authorization": "Bearer token-of-default"}):
        assert_error(client.get(status_url, headers=other), 404, "not_found")
        assert_error(client.get(result_url, headers=other), 404, "not_found")
        assert_error(client.get(result_url, headers=other, params={"format": "srt"}), 404, "not_found")


def test_without_tokens_everyone_is_one_user_and_owns_what_it_makes(settings, chat_path):
    with TestClient(create_app(AppSettings(queues=settings, responder="echo"))) as client:
        with client.websocket_connect(chat_path()) as ws:
            hello = ws.receive_json()
        with client.websocket_connect(chat_path(hello)) as ws:
            assert ws.receive_json()["session_id"] == hello["session_id"]
        with client.websocket_connect(chat_path({**hello, "resume": "not-the-secret"})) as ws:
            assert ws.receive_json()["error"]["code"] == "forbidden_session"


def test_api_users_come_from_the_environment():
    env = {"COUNCIL_API_TOKEN": "t-default", "COUNCIL_API_TOKENS": " alice:t-a , bob:t:b ,"}
    settings = AppSettings.from_env(env)
    assert settings.users == {"alice": "t-a", "bob": "t:b", "default": "t-default"}
    assert settings.token_users == {"t-a": "alice", "t:b": "bob", "t-default": "default"}
    assert "t-a" not in repr(settings) and "t-default" not in repr(settings)
    assert AppSettings.from_env({}).token_users == {}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("alice", "entry 1 is not USER:TOKEN"),
        ("alice:secret-a,bob", "entry 2 is not USER:TOKEN"),
        ("alice:", "entry 1 is not USER:TOKEN"),
        (":secret-a", "entry 1 is not USER:TOKEN"),
        ("alice:secret-a,alice:secret-b", "names the user 'alice' twice"),
        ("alice:secret-a,bob:secret-a", "the same token"),
        ("anonymous:secret-a", "not 'anonymous'"),
        ("al ice:secret-a", "a name is 1-64 letters"),
        ("default:secret-a", "the user of COUNCIL_API_TOKEN"),
    ],
)
def test_malformed_api_tokens_are_refused_without_showing_a_token(raw, says):
    with pytest.raises(SettingsError, match="API") as refused:
        AppSettings.from_env({"COUNCIL_API_TOKENS": raw, "COUNCIL_API_TOKEN": "secret-default"})
    assert says in str(refused.value)
    assert "secret-" not in str(refused.value)


def test_a_user_named_default_is_refused_even_without_the_one_token():
    # "default" is COUNCIL_API_TOKEN's user and an operator (COUNCIL_OPERATORS): as a tenant of
    # COUNCIL_API_TOKENS it would silently read everyone's usage.
    for env in ({"COUNCIL_API_TOKENS": "alice:secret-a,default:secret-d"}, {"COUNCIL_API_TOKENS": "default:secret-d"}):
        with pytest.raises(SettingsError, match="COUNCIL_OPERATORS") as refused:
            AppSettings.from_env(env)
        assert "'default'" in str(refused.value) and "secret-" not in str(refused.value)
