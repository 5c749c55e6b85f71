"""Tools members call through their model's tool calling: the calculator, the clock, memory
search and the HTTP tool (off by default), each checked against the member's tool level, each
call metered in the ledger, refusals recorded."""

import asyncio
import contextlib
import http.server
import threading
import uuid

import pytest
import redis.asyncio
from langchain_core.messages import AIMessage, ToolMessage

from council import Council, CouncilResponder, Step
from council.tools import ToolError, calculate

ASK = "Should I take the 1200 a month flat or the 950 one, over two years?"


def call(name: str, **args) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call-{uuid.uuid4().hex[:6]}"}])


@pytest.fixture
def fresh() -> dict[str, str]:
    return {"key_prefix": f"t{uuid.uuid4().hex[:10]}"}


@pytest.fixture
def run_turn(redis_url, council, council_settings, session_id, fresh):
    """`run_turn(models, text, council=..., **settings)`: the turn's items and its ledger entries."""

    def run(models, text=ASK, council_=None, session=None, **settings):
        async def scenario():
            client = redis.asyncio.Redis.from_url(redis_url)
            try:
                r = CouncilResponder(
                    council_settings.model_copy(update={**fresh, **settings}), council_ or council, models, client
                )
                turn_id = f"turn-{uuid.uuid4().hex[:8]}"
                items = [i async for i in r.answer(session or session_id, turn_id, text, "leon")]
                return items, [e for e in await r.budgets.ledger.entries() if e["turn_id"] == turn_id]
            finally:
                await client.aclose()

        return asyncio.run(scenario())

    return run


def done_of(items, member):
    return next(
        i.payload.model_dump()
        for i in items
        if isinstance(i, Step) and i.type == "member_done" and i.payload.member == member
    )


def tool_replies(model) -> list[ToolMessage]:
    """The tool results the model had read by its last call."""
    return [m for m in model.calls[-1] if isinstance(m, ToolMessage)]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 3 * 4", "14"),
        ("(1200 - 950) * 24", "6000"),
        ("2 ** 10", "1024"),
        ("7 / 2", "3.5"),
        ("sqrt(2)", "1.41421356237"),
        ("max(3, 9, 4) % 5", "4"),
        ("-(2^3)", "-8"),
        ("round(pi, 3)", "3.142"),
    ],
)
def test_the_calculator_computes(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('ls')", "is not allowed"),
        ("(1).__class__", "is not allowed"),
        ("open('/etc/passwd')", "is not allowed"),
        ("9 ** 9 ** 9", "too large"),
        ("10 ** 200 * 10 ** 200", "more than 100 digits"),
        ("1 / 0", "Division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("2 +", "not an arithmetic expression"),
        ("True + 1", "Only numbers"),
    ],
)
def test_the_calculator_refuses_anything_but_arithmetic(expression, message):
    with pytest.raises(ToolError, match=message):
        calculate(expression)


def test_a_member_calls_the_calculator_and_the_call_is_metered(run_turn, models, scripted):
    ada = scripted(
        script=[call("calculator", expression="(1200 - 950) * 24"), "The cheaper flat saves 6000 over two years."]
    )
    chosen = models(Ada=ada)
    items, entries = run_turn(chosen, critique=False)
    assert ada.offered[0] == ["calculator", "clock", "memory_search"]  # what tool level "read" allows
    [reply] = tool_replies(ada)
    assert reply.content == "6000" and reply.status == "success"
    assert done_of(items, "Ada")["tools"] == [{"tool": "calculator", "status": "ok", "detail": ""}]
    ada_entries = [e for e in entries if e["member"] == "Ada"]
    assert [(e["kind"], e["item"]) for e in ada_entries] == [
        ("llm", "llama3.2"),
        ("tool", "calculator"),
        ("llm", "llama3.2"),
    ]
    assert ada_entries[1]["calls"] == 1
    # The second call paid for the tool's answer in its input.
    assert ada_entries[2]["input_tokens"] > ada_entries[0]["input_tokens"]


def test_a_member_without_the_level_gets_a_refusal_that_is_recorded(run_turn, models, scripted):
    iris = scripted(script=[call("calculator", expression="1 + 1"), "Two, I am told."])
    items, entries = run_turn(models(Iris=iris), critique=False)
    assert iris.offered[0] == []  # tool level "none": offered nothing
    [reply] = tool_replies(iris)
    assert reply.status == "error"
    assert reply.content == "Iris may not use calculator: it needs tool level 'read', Iris has 'none'."
    assert done_of(items, "Iris")["tools"][0]["status"] == "refused"
    [refusal] = [e for e in entries if e["kind"] == "tool"]
    assert refusal["member"] == "Iris" and refusal["note"].startswith("refused: Iris may not use calculator")
    assert refusal["calls"] == 0 and refusal["money"] == 0


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the standard library's name
        body = b"Rents in Lisbon rose 9% this year."
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_page():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rents"
    finally:
        server.shutdown()
        server.server_close()


def test_the_http_tool_is_off_by_default_and_needs_the_network_level(run_turn, council, models, scripted):
    with local_page() as url:
        ada = scripted(script=[call("http_get", url=url), "No data."])
        run_turn(models(Ada=ada), critique=False)
        assert "http_get" not in ada.offered[0]
        assert tool_replies(ada)[0].content == "http_get is turned off on this server (COUNCIL_TOOLS_HTTP)."

        ada = scripted(script=[call("http_get", url=url), "No data."])
        run_turn(models(Ada=ada), critique=False, tools_http=True, tools_http_allow=("127.0.0.1",))
        assert tool_replies(ada)[0].content.startswith("Ada may not use http_get: it needs tool level 'network'")

        net = council.members[0].model_copy(update={"tool_level": "network"})
        networked = Council(members=(net, *council.members[1:]), chair=council.chair, fast=council.fast)
        ada = scripted(script=[call("http_get", url=url), "Rents rose."])
        items, entries = run_turn(
            models(Ada=ada), council_=networked, critique=False, tools_http=True, tools_http_allow=("127.0.0.1",)
        )
        assert "http_get" in ada.offered[0]
        assert tool_replies(ada)[0].content == "HTTP 200\nRents in Lisbon rose 9% this year."
        [fetch] = [e for e in entries if e["kind"] == "tool"]
        assert (fetch["item"], fetch["calls"], fetch["money"]) == ("http_get", 1, 0.001)  # priced per call

        ada = scripted(script=[call("http_get", url="http://example.com/"), "No data."])
        run_turn(models(Ada=ada), council_=networked, critique=False, tools_http=True, tools_http_allow=("127.0.0.1",))
        assert (
            tool_replies(ada)[0].content == "example.com is not on this server's allow-list (COUNCIL_TOOLS_HTTP_ALLOW)."
        )


def test_the_clock_and_unknown_tools(run_turn, models, scripted):
    ada = scripted(
        script=[
            call("clock", timezone="Europe/Lisbon"),
            call("clock", timezone="Mars/Base"),
            call("shell", cmd="ls"),
            "Done.",
        ]
    )
    items, _ = run_turn(models(Ada=ada), critique=False)
    lisbon, mars, shell = tool_replies(ada)
    assert lisbon.status == "success" and lisbon.content.endswith(", Europe/Lisbon)") and lisbon.content[:2] == "20"
    assert mars.content == "Unknown time zone 'Mars/Base': use an IANA name such as Europe/Lisbon."
    assert shell.content.startswith("There is no tool 'shell'.")
    assert [t["status"] for t in done_of(items, "Ada")["tools"]] == ["ok", "error", "refused"]


def test_memory_search_finds_an_earlier_turn(run_turn, models, scripted, session_id):
    run_turn(models(), "Should I learn the cello or the violin this winter?", critique=False, session=session_id)
    ada = scripted(script=[call("memory_search", query="cello"), "You asked about the cello before."])
    run_turn(models(Ada=ada), critique=False, session=session_id)
    [found] = tool_replies(ada)
    assert found.content.startswith("The person said: Should I learn the cello or the violin this winter?")


def test_tool_rounds_are_bounded(run_turn, models, scripted):
    ada = scripted(script=[call("clock", timezone="UTC")])  # asks for the clock forever
    items, entries = run_turn(models(Ada=ada), critique=False, tool_rounds=2)
    assert len(ada.calls) == 3
    assert [e["kind"] for e in entries if e["member"] == "Ada"] == ["llm", "tool", "llm", "tool", "llm"]
    dropped = [i.payload.model_dump() for i in items if isinstance(i, Step) and i.type == "member_dropped"]
    assert [d["member"] for d in dropped] == ["Ada"]  # it never answered in words
