"""Hostile input against the real app: generated WebSocket frames and REST requests, each answered
as a success or a 4xx in the one error shape, never a 500, and the app still serves afterwards.

One app per test function (hypothesis runs its examples inside), a real Redis and a real worker.
Turns started by fuzzed frames queue their jobs where no worker listens, and are interrupted.
"""

import json
import string
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import hypothesis
import pytest
from hypothesis import HealthCheck, configuration, given
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from shared_schemas import AUDIO_FORMATS, MAX_AUDIO_BYTES, EventType
from web.app import create_app
from web.protocol import MAX_TEXT_FRAME, AudioEnd, AudioStart, Ping, TextTurn, client_frame
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(300)]

# Hypothesis caches what it reads from our source under its home, by default ./.hypothesis: not in the repository.
configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "council-hypothesis")
# Deterministic (the same examples every run), no example database, room for a slow shared machine.
FUZZ = hypothesis.settings(
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text a client could send at all: any Unicode scalar (no lone surrogates, which UTF-8 cannot carry).
TEXT = st.text(st.characters(codec="utf-8"), max_size=60)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def assert_answered_well(response) -> None:
    """A success, or a 4xx whose body is exactly the error shape (OpenAI's on its /v1 routes, with
    a code of ours); never a 5xx."""
    request = f"{response.request.method} {response.request.url}"
    assert response.status_code < 500, f"{request} -> {response.status_code}: {response.text[:500]}"
    if response.status_code >= 400 and response.request.method != "HEAD":
        body = response.json()
        shape = {"code", "message", "type", "param"} if response.request.url.path.startswith("/v1/") else None
        if shape is None or set(body.get("error", {})) != shape:
            shape = {"code", "message"}
        assert set(body) == {"error"} and set(body["error"]) == shape, f"{request}: {body}"
        code, message = body["error"]["code"], body["error"]["message"]
        assert isinstance(code, str) and code and isinstance(message, str) and message.strip(), f"{request}: {body}"


@pytest.fixture
def quiet(settings):
    """Queues no worker serves: fuzzed uploads and turns wait there instead of occupying the worker."""
    return settings.model_copy(update={"realtime_queue": "fuzz-realtime", "batch_queue": "fuzz-batch"})


# --- REST ------------------------------------------------------------------------------------------

SEGMENT = st.one_of(
    TEXT,
    st.sampled_from(["", ".", "..", "%00", "%2e%2e", "a" * 300, "index.html", "chat.js", "x.wav", "0" * 32]),
    st.from_regex(r"[0-9a-f]{32}(-[0-9]{3})?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{8,40}\.wav", fullmatch=True),
)
QUERY_KEYS = ["format", "token", "day", "user", "member", "session_id", "resume", "last_event_id", "x", ""]
QUERY = st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_KEYS), TEXT), st.one_of(TEXT, st.sampled_from(
    ["json", "srt", "vtt", "txt", "csv", "2026-11-24", "9999-99-99", "0", "-1", "default", "anonymous"]
))), max_size=4)  # fmt: skip
METHODS = st.sampled_from(["GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            None,
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data; boundary=",
            "text/plain",
            "application/x-www-form-urlencoded",
            "audio/wav",
            "",
        ]
    ),  # fmt: skip
    TEXT,
)
SPEECH = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(TEXT, st.sampled_from(["", " ", "Hi.", "x" * 1001]), st.integers(), st.none()),
        "voice": st.one_of(st.sampled_from(["joe", "nobody", "../etc", "", "a" * 65]), TEXT, st.integers()),
        "extra": JSON,
    },
)


def routes(app) -> dict[str, list[str]]:
    """Every route in the app's table, as a template (`{name}` stands for a path segment), with the
    methods it serves."""
    found = {}
    for route in app.routes:
        if isinstance(route, Route):
            found[route.path] = sorted(route.methods or ["GET"])
        elif isinstance(route, WebSocketRoute):
            found[route.path] = ["GET"]
        elif isinstance(route, Mount):
            found |= {route.path: ["GET"], f"{route.path}/{{path}}": ["GET"]}
    return found


@st.composite
def rest_requests(draw: st.DrawFn, table: dict[str, list[str]], segments: st.SearchStrategy[str]) -> dict:
    template = draw(st.sampled_from(sorted(table)))
    parts = template.split("/")
    for i, part in enumerate(parts):
        if part.startswith("{"):
            parts[i] = quote(draw(segments), safe="")
    method = draw(st.sampled_from(table[template]) | METHODS)  # the route's own methods half the time
    request = {"method": method, "url": "/".join(parts) or "/", "params": draw(QUERY), "headers": {}}
    body = draw(st.sampled_from(["none", "bytes", "json", "speech"]))
    if body == "bytes":
        request["content"] = draw(st.binary(max_size=2048))
    elif body == "json":
        request["content"] = json.dumps(draw(JSON)).encode()
    elif body == "speech":
        request["content"] = json.dumps(draw(SPEECH)).encode()
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        request["headers"]["content-type"] = content_type.encode()  # raw bytes, as a hostile client sends
    return request


def test_rest_requests_to_every_route(settings):
    """Random methods, path segments, query strings, bodies and content types on every route."""
    app = create_app(AppSettings(queues=settings.model_copy(update={"batch_queue": "fuzz-batch"}), responder="echo"))
    table = routes(app)
    assert {"/api/transcriptions/{batch_id}/{job_id}", "/api/speech", "/api/audio/{session_id}/{name}"} <= set(table)
    with TestClient(app, raise_server_exceptions=False) as client:
        # A batch that exists (its job waits in a queue no worker serves): its ids are segments too.
        upload = client.post("/api/transcriptions", files=[("files", ("a.wav", b"RIFF" + bytes(100), "audio/wav"))])
        batch = upload.json()
        real = st.sampled_from([batch["batch_id"], batch["jobs"][0]["job_id"]])

        @hypothesis.settings(FUZZ, max_examples=150)
        @given(request=rest_requests(table, SEGMENT | real))
        def answered(request):
            sent.append(request)
            assert_answered_well(client.request(**request))

        sent: list = []
        answered()
        assert len(sent) >= 150
        assert client.get("/health").status_code == 200
        assert client.get("/openapi.json").json()["openapi"].startswith("3.")


MULTIPART_NAMES = st.one_of(st.sampled_from(["files", "files", "file", ""]), TEXT)
FILE_NAMES = st.one_of(
    st.none(), st.sampled_from(["a.wav", "../../etc/passwd", "x" * 300, "a\x00b.mp3", ".webm", "C:\\a.flac"]), TEXT
)
PART = st.tuples(
    MULTIPART_NAMES,
    FILE_NAMES,
    st.one_of(st.binary(max_size=2048), st.sampled_from([b"", b"RIFF" + bytes(40), b"fLaC"])),
    # A content type httpx will write (no control characters); raw_multipart sends worse.
    st.one_of(
        st.none(),
        st.sampled_from(["audio/wav", "application/octet-stream", ""]),
        st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=30),
    ),
)


@st.composite
def raw_multipart(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body put together by hand, often wrongly: bad boundaries, headers, endings."""
    boundary = draw(st.sampled_from(["b0undary", "", "x" * 200, "--", "a b"]) | st.text(string.printable, max_size=20))
    lines = []
    for name, filename, content, _ in draw(st.lists(PART, max_size=4)):
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        header = draw(st.sampled_from([f"Content-Disposition: {disposition}", "Content-Disposition: nonsense", ""]))
        lines.append(f"--{boundary}\r\n{header}\r\n\r\n".encode(errors="replace") + content + b"\r\n")
    end = draw(st.sampled_from([f"--{boundary}--\r\n", f"--{boundary}", "", "--other--\r\n"])).encode()
    return b"".join(lines) + end, f"multipart/form-data; boundary={boundary}"


def test_multipart_uploads(quiet, flite):
    """Well-formed forms with odd parts, and hand-made broken ones, to the batch upload."""
    with TestClient(create_app(AppSettings(queues=quiet, responder="echo")), raise_server_exceptions=False) as client:

        @hypothesis.settings(FUZZ, max_examples=50)
        @given(parts=st.lists(PART, max_size=5), params=QUERY)
        def form(parts, params):
            sent.append(parts)
            files = [(name, (filename, content, kind)) for name, filename, content, kind in parts]
            assert_answered_well(client.post("/api/transcriptions", files=files or None, params=params))

        @hypothesis.settings(FUZZ, max_examples=50)
        @given(body=raw_multipart())
        def broken(body):
            sent.append(body)
            content, content_type = body
            response = client.post("/api/transcriptions", content=content, headers={"content-type": content_type})
            assert_answered_well(response)

        sent: list = []
        form()
        broken()
        assert len(sent) >= 100
        response = client.post("/api/transcriptions", files=[("files", ("memo.wav", flite("hello"), "audio/wav"))])
        assert response.status_code == 202, response.text
        assert client.get(response.json()["status_url"]).json()["totals"]["queued"] == 1


# --- WebSocket -------------------------------------------------------------------------------------

FRAME_TYPES = ["text", "audio_start", "audio_end", "interrupt", "ping"]
NEAR_VALID = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(FRAME_TYPES), st.sampled_from(["TEXT", "", "nope", 7]), st.none())},
    optional={
        "text": st.one_of(TEXT.filter(str.strip), st.sampled_from(["", "x" * 4001]), st.integers(), st.none()),
        "voice": st.one_of(st.sampled_from(["joe", "max", "../x", "", "a" * 65]), TEXT),
        "format": st.one_of(st.sampled_from([*AUDIO_FORMATS, "exe", "WAV"]), st.none(), st.integers()),
        "hear_members": st.one_of(st.booleans(), st.none(), TEXT),
    },
)
# A run of audio_start, audio chunks and audio_end in any order, with the odd other frame between.
AUDIO_RUN = st.lists(
    st.one_of(
        st.just({"type": "audio_start", "format": "wav"}),
        st.just({"type": "audio_end"}),
        st.binary(min_size=1, max_size=512),
        st.just({"type": "ping"}),
    ),
    max_size=6,
)
FRAME = st.one_of(
    NEAR_VALID.map(json.dumps),
    AUDIO_RUN.map(lambda run: [f if isinstance(f, bytes) else json.dumps(f) for f in run]),
    JSON.map(json.dumps),
    TEXT,
    st.binary(max_size=1024),
    st.integers(0, 9).flatmap(lambda n: st.just("x" * (MAX_TEXT_FRAME + 1)) if n == 0 else TEXT),
)


def flatten(frames: list) -> list[str | bytes]:
    return [f for item in frames for f in (item if isinstance(item, list) else [item])]


def expected_replies(frames: list[str | bytes]) -> list[str]:
    """What the server answers at once to each frame, by PROTOCOL.md: `pong`, or an error's code.

    Turns started or stopped answer later, with events; those are not counted here."""
    recording, received, replies = False, 0, []
    for frame in frames:
        if isinstance(frame, bytes):
            if not recording:
                replies.append("bad_state")
            elif received + len(frame) > MAX_AUDIO_BYTES:
                recording = False
                replies.append("audio_too_large")
            else:
                received += len(frame)
            continue
        if len(frame) > MAX_TEXT_FRAME:
            replies.append("frame_too_large")
            continue
        try:
            parsed = client_frame.validate_json(frame)
        except ValidationError:
            replies.append("bad_frame")
            continue
        match parsed:
            case Ping():
                replies.append("pong")
            case TextTurn() if recording:
                replies.append("bad_state")
            case AudioStart() if recording:
                replies.append("bad_state")
            case AudioStart():
                recording, received = True, 0
            case AudioEnd() if not recording:
                replies.append("bad_state")
            case AudioEnd():
                recording = False
                if not received:
                    replies.append("empty_audio")
    return replies


def assert_frame_shape(frame: dict) -> None:
    if frame["id"] is None:  # not part of the conversation: session, pong, error
        assert frame["type"] in ("session", "pong", "error"), frame
        if frame["type"] == "error":
            assert set(frame) == {"id", "type", "error"} and set(frame["error"]) == {"code", "message"}, frame
            assert frame["error"]["code"] and frame["error"]["message"].strip(), frame
    else:
        assert frame["type"] in {t.value for t in EventType}, frame
        assert {"id", "type", "job_id", "seq", "time", "payload"} <= set(frame), frame


def test_websocket_frames(quiet):
    """Random text, JSON objects shaped almost like the client frames, binary, and audio_start /
    audio_end in any order: each frame is answered as PROTOCOL.md says, in the error shape when
    refused, and the connection stays open."""
    with TestClient(create_app(AppSettings(queues=quiet, responder="echo")), raise_server_exceptions=False) as client:

        @hypothesis.settings(FUZZ, max_examples=80)
        @given(frames=st.lists(FRAME, min_size=1, max_size=10).map(flatten))
        def conversation(frames):
            # Last, stop any turn the frames started (its jobs wait where no worker listens) and ping.
            frames = [*frames, json.dumps({"type": "audio_end"}), '{"type": "interrupt"}', '{"type": "ping"}']
            sent.append(frames)
            expected = expected_replies(frames)
            with client.websocket_connect("/ws/chat") as ws:
                assert ws.receive_json()["type"] == "session"
                for frame in frames:
                    if isinstance(frame, bytes):
                        ws.send_bytes(frame)
                    else:
                        ws.send_text(frame)
                replies = []
                while replies.count("pong") < expected.count("pong"):
                    frame = ws.receive_json()
                    assert_frame_shape(frame)
                    if frame["id"] is None:
                        replies.append(frame["error"]["code"] if frame["type"] == "error" else frame["type"])
            assert replies == expected

        sent: list = []
        conversation()
        assert len(sent) >= 80 and sum(map(len, sent)) >= 500
        with client.websocket_connect("/ws/chat") as ws:
            assert ws.receive_json()["type"] == "session"
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"id": None, "type": "pong"}


CONNECT_PARAMS = st.dictionaries(
    st.sampled_from(["session_id", "resume", "last_event_id", "token", "x"]),
    st.one_of(
        TEXT,
        st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True),
        st.sampled_from(["0", "1700000000000-0", "9" * 21, "", "a" * 65]),
    ),
)


def test_websocket_connection_parameters(quiet):
    """Random session ids, resume secrets and last event ids: a session, or one error frame in the
    shape and the connection closed with 1008."""
    with TestClient(create_app(AppSettings(queues=quiet, responder="echo")), raise_server_exceptions=False) as client:

        @hypothesis.settings(FUZZ, max_examples=40)
        @given(params=CONNECT_PARAMS)
        def connect(params):
            sent.append(params)
            query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
            with client.websocket_connect(f"/ws/chat?{query}") as ws:
                first = ws.receive_json()
                assert_frame_shape(first)
                if first["type"] == "error":
                    with pytest.raises(WebSocketDisconnect) as closed:
                        ws.receive_json()
                    assert closed.value.code == 1008
                    return
                assert first["type"] == "session"
                ws.send_json({"type": "ping"})
                assert ws.receive_json()["type"] == "pong"

        sent: list = []
        connect()
        assert len(sent) >= 40
        with client.websocket_connect("/ws/chat") as ws:
            assert ws.receive_json()["type"] == "session"
