"""One error base (issue #25): every error class of the app's runtime derives from
`shared_schemas.Refusal`, and each maps to a code of the one vocabulary, an HTTP status, and the
shape of each edge: the app's HTTP body, a WebSocket error frame, a turn's `turn_done` error and
OpenAI's body on /v1. The classes are found, not listed: every module of the app's packages is
imported and `Refusal`'s subclasses walked."""

import importlib
import json
import pkgutil

import pytest

import billing
import council
import queues
import shared_schemas
import web
from shared_schemas import RETRYABLE, ErrorCode, Refusal, payloads
from web.errors import error_of, response_of, translate
from web.protocol import error_frame
from web.v1.errors import openai_error

PACKAGES = (shared_schemas, queues, billing, council, web)
OPENAI_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "insufficient_quota",
    "server_error",
}

# The classes with an `__init__` of their own, each made as its raisers make it. A new one that is
# not here fails `test_every_refusal_maps_to_a_code_a_status_and_each_edge_s_shape`.
EXAMPLES = {
    "queues._fair.RateLimited": lambda cls: cls("user", "mallory", 3, 3),
    "queues._blobs.BlobTooLarge": lambda cls: cls(70_000_000, 67_108_864),
    "web.errors.ApiError": lambda cls: cls(404, ErrorCode.NOT_FOUND, "No such batch."),
    "web.v1.errors.OpenAIError": lambda cls: cls(400, "No voice 'x'.", code=ErrorCode.UNKNOWN_VOICE, param="voice"),
    "web.turns.TurnFailed": lambda cls: cls(
        payloads.Failed(code=ErrorCode.UNDECODABLE_AUDIO, message="The audio is damaged.", retryable=False)
    ),
}


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in found))


def _all_refusals() -> list[type[Refusal]]:
    for package in PACKAGES:
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    return sorted(_subclasses(Refusal), key=lambda c: f"{c.__module__}.{c.__qualname__}")


REFUSALS = _all_refusals()


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _example(cls: type[Refusal]) -> Refusal:
    if (make := EXAMPLES.get(_name(cls))) is not None:
        return make(cls)
    assert cls.__init__ is Refusal.__init__, f"{_name(cls)} has its own __init__: add an example to EXAMPLES"
    return cls("What to do about it.")


def test_the_walk_finds_every_layer_s_errors():
    names = {_name(cls) for cls in REFUSALS}
    for expected in (
        "queues._fair.RateLimited",
        "queues._blobs.BlobTooLarge",
        "council.errors.BudgetExceeded",
        "council.errors.LLMUnavailable",
        "web.meter.QuotaExceeded",
        "web.meter.StorageFull",
        "web.streams.TooManyStreams",
        "web.errors.ApiError",
        "web.v1.errors.OpenAIError",
        "web.turns.TurnFailed",
    ):
        assert expected in names, (expected, sorted(names))
    assert set(EXAMPLES) <= names, "an example for a class that is gone"


@pytest.mark.parametrize("cls", REFUSALS, ids=_name)
def test_every_refusal_maps_to_a_code_a_status_and_each_edge_s_shape(cls):
    exc = _example(cls)
    # The vocabulary, a status, and `retryable` from the one set (a failed job's as its worker said).
    assert isinstance(exc.code, ErrorCode)  # each has a meaning: tests/shared_schemas/test_error_codes.py
    assert isinstance(exc.status, int) and 400 <= exc.status <= 599
    assert exc.retryable is (exc.code in RETRYABLE)
    assert exc.message
    # HTTP: the app's one shape, its status, Retry-After where the code has one.
    assert translate(exc) is exc
    response = response_of(exc)
    assert response.status_code == exc.status
    assert json.loads(response.body) == {"error": {"code": exc.code, "message": exc.message}}
    assert ("retry-after" in response.headers) is (exc.retry_after_s is not None)
    # The WebSocket: an error frame; a turn: `turn_done`'s error.
    assert error_frame(exc.code, exc.message)["error"] == {"code": exc.code, "message": exc.message}
    assert error_of(exc) == {"code": str(exc.code), "message": exc.message, "retryable": exc.retryable}
    # /v1: OpenAI's shape, with our code kept.
    v1 = openai_error(exc)
    assert v1.status == (400 if exc.status == 422 else exc.status)
    assert v1.body() == {"error": {"message": exc.message, "type": v1.type, "param": v1.param, "code": exc.code}}
    assert v1.type in OPENAI_TYPES


def test_a_redis_error_that_is_a_bug_closes_a_websocket_as_an_internal_error():
    """A Redis error that is no refusal (a WRONGTYPE: our bug) on a WebSocket route is logged and
    the socket closed 1011, not a crash inside the handler (which read an HTTP request's method)."""
    import redis.exceptions
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from web.errors import handlers

    async def broken(ws):
        await ws.accept()
        raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    app = Starlette(routes=[WebSocketRoute("/ws", broken)], exception_handlers=handlers)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1011
