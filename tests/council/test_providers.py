"""LLM providers: real provider clients against a closed port and a tiny real server; `check()`."""

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis.asyncio

from council import CouncilResponder, CouncilSettings, LLMUnavailable, Step
from council.settings import OLLAMA_MEMBERS_FILE

DELIBERATE = "Should I move to Lisbon or stay in Berlin?"


class FakeOllama(BaseHTTPRequestHandler):
    """A real HTTP server with Ollama's answers to a model list, and to a chat about a model
    it does not have."""

    models: list[str] = []

    def do_GET(self) -> None:
        if self.path == "/api/tags":
            self._send(200, {"models": [{"name": name, "model": name} for name in self.models]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._send(404, {"error": f"model '{body['model']}' not found"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ollama_server() -> Iterator[tuple[str, type[FakeOllama]]]:
    handler = type("Handler", (FakeOllama,), {"models": ["llama3.2:latest"]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(5)


def run_turn(redis_url: str, settings: CouncilSettings, session_id: str, text: str) -> list:
    seen: list = []

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            responder = CouncilResponder.from_settings(settings, client)  # starts without any LLM
            async for item in responder.answer(session_id, "t1", text, "leon"):
                seen.append(item)
        finally:
            await client.aclose()

    asyncio.run(scenario())
    return seen


@pytest.mark.parametrize("text", [DELIBERATE, "Hello", "I keep thinking about my garden and the neighbours"])
def test_an_unreachable_ollama_fails_the_turn_clearly(redis_url, session_id, closed_port, text):
    pytest.importorskip("langchain_ollama")
    settings = CouncilSettings(members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(LLMUnavailable) as failed:
        run_turn(redis_url, settings, session_id, text)
    message = str(failed.value)
    assert message.startswith(f"No LLM server answers at http://127.0.0.1:{closed_port} (ollama). ")
    assert message.count("No LLM server") == 1  # one message per server, however many members use it
    assert "OLLAMA_BASE_URL" in message and "COUNCIL_MEMBERS_FILE" in message
    assert failed.value.code == "llm_unavailable" and failed.value.retryable


def test_an_unreachable_openai_server_fails_the_turn_clearly(redis_url, session_id, closed_port, tmp_path: Path):
    pytest.importorskip("langchain_openai")
    members = tmp_path / "members.toml"
    members.write_text(OLLAMA_MEMBERS_FILE.read_text().replace('provider = "ollama"', 'provider = "openai"'))
    settings = CouncilSettings(
        members_file=members, openai_base_url=f"http://127.0.0.1:{closed_port}/v1", llm_retries=0
    )
    with pytest.raises(LLMUnavailable, match=f"No LLM server answers at http://127.0.0.1:{closed_port}/v1 \\(openai"):
        run_turn(redis_url, settings, session_id, DELIBERATE)


def test_a_missing_model_says_how_to_get_it(redis_url, session_id, ollama_server):
    pytest.importorskip("langchain_ollama")
    url, _ = ollama_server
    with pytest.raises(LLMUnavailable, match=r"has no model 'llama3.2': .*`ollama pull llama3.2`"):
        run_turn(redis_url, CouncilSettings(members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=url), session_id, "Hello")


def test_check_reports_an_unreachable_server(council, closed_port):
    from council.providers import check

    settings = CouncilSettings(
        members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=f"http://127.0.0.1:{closed_port}", check_timeout_s=1
    )
    [status] = asyncio.run(check(council, settings))
    assert not status.reachable and not status.ready
    assert status.members == ("Ada", "Iris", "Angus", "Max")
    assert status.detail.startswith(f"GET http://127.0.0.1:{closed_port}/api/tags failed")
    assert "ollama serve" in status.detail
    assert status.as_dict()["ready"] is False


def test_check_reports_a_ready_server_and_missing_models(council, ollama_server):
    from council.providers import check

    url, handler = ollama_server
    settings = CouncilSettings(members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=url)
    [status] = asyncio.run(check(council, settings))
    assert status.ready and status.detail == "ok"
    handler.models = ["qwen2.5:7b"]
    [status] = asyncio.run(check(council, settings.model_copy()))
    assert status.reachable and not status.ready
    assert status.missing_models == ("llama3.2",)
    assert status.detail == "models not on the server: llama3.2"


def test_dropped_steps_name_the_server(redis_url, session_id, closed_port):
    pytest.importorskip("langchain_ollama")
    settings = CouncilSettings(members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=f"http://127.0.0.1:{closed_port}")
    seen: list = []

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            responder = CouncilResponder.from_settings(settings, client)
            async for item in responder.answer(session_id, "t1", DELIBERATE, "leon"):
                seen.append(item)
        finally:
            await client.aclose()

    with pytest.raises(LLMUnavailable):
        asyncio.run(scenario())
    dropped = [s for s in seen if isinstance(s, Step) and s.type == "member_dropped"]
    assert {s.payload.member for s in dropped} == {"Ada", "Iris", "Angus"}
    assert all(f"127.0.0.1:{closed_port}" in s.payload.reason for s in dropped)
