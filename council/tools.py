"""Tools members may call while they answer, through their model's tool calling (`bind_tools`).

    calculator     read      arithmetic, evaluated from its syntax tree (never `eval`)
    clock          read      the date and time, in any IANA time zone
    memory_search  read      what was said earlier in this conversation
    http_get       network   a page from a host on the allow-list; off unless COUNCIL_TOOLS_HTTP

A member is offered the tools its `tool_level` allows. Every call is checked again when it
comes (a model may call a tool it was not offered): an unknown, disabled or forbidden tool gets a
clear refusal that the model reads and the ledger records; an allowed call is debited (its price
per call, from the price table) before it runs, so a tool is metered like the rest.
"""

import ast
import asyncio
import math
import operator
import urllib.parse
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx
from langchain_core.messages import ToolCall, ToolMessage

from .budgets import Budgets, Payer
from .errors import BudgetExceeded
from .members import Member, ToolLevel
from .memory import Memory
from .settings import CouncilSettings

HTTP_MAX_BYTES = 20_000


class ToolError(Exception):
    """The call cannot be answered (bad arguments, a refusal); the message goes to the model."""


@dataclass(frozen=True)
class Tool:
    name: str
    level: ToolLevel
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments
    run: Callable[[dict[str, Any], Payer], Awaitable[str]]

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI function format every chat model's `bind_tools` takes."""
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class Outcome:
    """What came of one call, for the member's `member_done` step."""

    tool: str
    status: str  # ok, refused or error
    detail: str = ""


def _object(**properties: tuple[str, str]) -> dict[str, Any]:
    props = {name: {"type": kind, "description": text} for name, (kind, text) in properties.items()}
    return {"type": "object", "properties": props, "required": list(properties)}


class Toolbox:
    def __init__(self, settings: CouncilSettings, budgets: Budgets, memory: Memory) -> None:
        self.settings = settings
        self.budgets = budgets
        self.memory = memory
        tools = [
            Tool(
                "calculator",
                "read",
                "Evaluate an arithmetic expression exactly: + - * / // % **, parentheses, and sqrt, log, exp, "
                "sin, cos, tan, abs, round, min, max, pi, e.",
                _object(expression=("string", "the expression, e.g. (1200 * 12) / 0.85")),
                self._calculate,
            ),
            Tool(
                "clock",
                "read",
                "The current date, time and weekday in a time zone.",
                _object(timezone=("string", "an IANA time zone such as Europe/Lisbon, or UTC")),
                self._clock,
            ),
            Tool(
                "memory_search",
                "read",
                "Search what the person and the council said earlier in this conversation.",
                _object(query=("string", "words to look for")),
                self._remember,
            ),
            Tool(
                "http_get",
                "network",
                "Fetch a web page (text, at most 20 kB) from an allowed host.",
                _object(url=("string", "an http or https URL")),
                self._http_get,
            ),
        ]
        self.tools = {tool.name: tool for tool in tools}

    def enabled(self, tool: Tool) -> bool:
        return tool.name != "http_get" or self.settings.tools_http

    def offered(self, member: Member) -> list[Tool]:
        """The tools `member` may call, to bind to its model."""
        return [t for t in self.tools.values() if self.enabled(t) and member.may_use(t.level)]

    async def run(self, call: ToolCall, member: Member, payer: Payer) -> tuple[ToolMessage, Outcome]:
        """Answer one tool call: its result, or why not, as the message the model reads next."""
        name = call["name"]
        tool = self.tools.get(name)
        refusal = None
        if tool is None:
            refusal = f"There is no tool {name!r}. Tools: {', '.join(t.name for t in self.offered(member))}."
        elif not self.enabled(tool):
            refusal = f"{name} is turned off on this server (COUNCIL_TOOLS_HTTP)."
        elif not member.may_use(tool.level):
            refusal = (
                f"{member.name} may not use {name}: it needs tool level {tool.level!r}, "
                f"{member.name} has {member.tool_level!r}."
            )
        if refusal is not None:
            charge = self.budgets.charge(payer, member, "tool", name)
            await self.budgets.record(replace(charge, note=f"refused: {refusal}"))
            return _message(call, refusal, "error"), Outcome(name, "refused", refusal)
        assert tool is not None
        try:
            await self.budgets.tool(payer, member, name)
        except BudgetExceeded as exc:
            return _message(call, exc.message, "error"), Outcome(name, "refused", exc.message)
        try:
            async with asyncio.timeout(self.settings.tool_timeout_s):
                result = await tool.run(dict(call["args"]), payer)
        except ToolError as exc:
            return _message(call, str(exc), "error"), Outcome(name, "error", str(exc))
        except TimeoutError:
            text = f"{name} took longer than {self.settings.tool_timeout_s:g} s."
            return _message(call, text, "error"), Outcome(name, "error", text)
        return _message(call, result, "success"), Outcome(name, "ok")

    # The tools.

    async def _calculate(self, args: dict[str, Any], payer: Payer) -> str:
        return calculate(_text(args, "expression"))

    async def _clock(self, args: dict[str, Any], payer: Payer) -> str:
        name = str(args.get("timezone") or "UTC")
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"Unknown time zone {name!r}: use an IANA name such as Europe/Lisbon.") from None
        now = datetime.now(zone)
        return f"{now.isoformat(timespec='seconds')} ({now:%A}, {name})"

    async def _remember(self, args: dict[str, Any], payer: Payer) -> str:
        query = _text(args, "query")
        if payer.session_id is None:
            raise ToolError("There is no conversation to search.")
        found = await self.memory.search(payer.session_id, query)
        if not found:
            return f"Nothing earlier in this conversation mentions {query!r}."
        return "\n".join(f"The person said: {t.user}\nThe council answered: {t.answer}" for t in found)

    async def _http_get(self, args: dict[str, Any], payer: Payer) -> str:
        url = _text(args, "url")
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise ToolError(f"{url!r} is not an http or https URL.")
        if not any(host == a or host.endswith(f".{a}") for a in (a.lower() for a in self.settings.tools_http_allow)):
            raise ToolError(f"{host} is not on this server's allow-list (COUNCIL_TOOLS_HTTP_ALLOW).")
        async with httpx.AsyncClient(timeout=self.settings.tool_timeout_s, follow_redirects=False) as client:
            try:
                async with client.stream("GET", url) as response:
                    body = b""
                    async for piece in response.aiter_bytes():
                        body += piece
                        if len(body) >= HTTP_MAX_BYTES:
                            break
            except httpx.HTTPError as exc:
                raise ToolError(f"GET {url} failed: {type(exc).__name__}: {exc}") from None
        text = body[:HTTP_MAX_BYTES].decode(response.encoding or "utf-8", errors="replace")
        return f"HTTP {response.status_code}\n{text}"


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"The argument {name!r} must be a non-empty string.")
    return value.strip()


def _message(call: ToolCall, text: str, status: str) -> ToolMessage:
    return ToolMessage(content=text, tool_call_id=call.get("id") or call["name"], name=call["name"], status=status)


# The calculator: a small evaluator over Python's expression syntax tree.

OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPRESSION = 200
MAX_EXPONENT = 1000
MAX_DIGITS = 100


def calculate(expression: str) -> str:
    """The value of an arithmetic expression, or `ToolError` saying what is wrong with it."""
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION} characters.")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        value = _evaluate(tree.body)
    except SyntaxError:
        raise ToolError(f"{expression!r} is not an arithmetic expression.") from None
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except (ValueError, OverflowError, TypeError) as exc:
        raise ToolError(f"{expression!r} cannot be computed: {exc}.") from None
    if isinstance(value, complex):
        raise ToolError(f"{expression!r} is not a real number.")
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


def _too_large(base: float, exponent: float) -> bool:
    return abs(exponent) > MAX_EXPONENT or (abs(base) > 1 and exponent * math.log10(abs(base)) > 300)


def _evaluate(node: ast.AST) -> Any:
    match node:
        case ast.Constant(value=bool()):
            raise ToolError("Only numbers, please.")
        case ast.Constant(value=int() | float() as value):
            return value
        case ast.Name(id=name) if name in CONSTANTS:
            return CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in OPERATORS:
            return OPERATORS[type(op)](_evaluate(operand))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in OPERATORS:
            a, b = _evaluate(left), _evaluate(right)
            if isinstance(op, ast.Pow) and (
                abs(b) > MAX_EXPONENT or (abs(a) > 1 and abs(b) * math.log10(abs(a)) > 300)
            ):
                raise ToolError("That power is too large to compute.")
            result = OPERATORS[type(op)](a, b)
            if isinstance(result, int) and len(str(abs(result))) > MAX_DIGITS:
                raise ToolError(f"The result has more than {MAX_DIGITS} digits.")
            return result
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            return FUNCTIONS[name](*(_evaluate(a) for a in args))
    raise ToolError(f"{ast.unparse(node)!r} is not allowed: use numbers, operators and {', '.join(FUNCTIONS)}.")
