"""The design RQ replaces: a tiny Starlette service called over HTTP."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"kind": "pong", "job": (await request.json())["job_id"]})


app = Starlette(routes=[Route("/ping", ping, methods=["POST"])])
