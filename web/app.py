"""The Starlette app: built by `create_app()`, served by uvicorn (`make run`)."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import redis.asyncio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from council import Responder

from . import audio, batch, chat, docs, health, metrics, openapi, speech, usage, v1
from .auth import TokenAuth
from .errors import handlers
from .requests import RequestsPerUser
from .services import Services, services
from .settings import AppSettings
from .sitecheck import SiteCheck

STATIC = Path(__file__).parent / "static"


async def health_endpoint(request: Request) -> JSONResponse:
    s = services(request)
    healthy, report = await health.acheck(s.settings.queues, s.redis, s.hub)
    report["status"] = "ok" if healthy else "unavailable"
    report["voices"] = sorted(await s.voices()) if healthy else []
    llm = await s.llm_status()
    if llm is not None:
        # Reported, not fatal: voice and batch work without an LLM; turns then fail saying why.
        report["llm"] = llm
    if healthy and (down := await s.llm_down()) is not None:
        report["status"], report["reason"] = "degraded", down
    elif notice := await s.llm_notice():
        report["notice"] = notice  # information, not a fault: the small built-in model answers
    return JSONResponse(report, status_code=200 if healthy else 503)


def page(name: str) -> Callable[[Request], Awaitable[FileResponse]]:
    async def endpoint(request: Request) -> FileResponse:
        return FileResponse(STATIC / name)

    return endpoint


def create_app(
    settings: AppSettings | None = None, make_responder: Callable[[redis.asyncio.Redis], Responder] | None = None
) -> Starlette:
    """The app. `make_responder` builds who answers turns from the app's Redis client; by
    default the settings say (the council, or echo)."""
    settings = settings or AppSettings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = await Services.open(settings, make_responder)
        usage.watch(app.state.services)
        try:
            yield
        finally:
            await app.state.services.close()

    return Starlette(
        routes=[
            Route("/", page("index.html")),
            Route("/batch", page("batch.html")),
            Route("/health", health_endpoint),
            *metrics.routes,
            *chat.routes,
            *audio.routes,
            *batch.routes,
            *speech.routes,
            *usage.routes,
            *v1.routes,
            *openapi.routes,
            *docs.routes(),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[
            # First: a foreign Host or a page elsewhere is refused before anything else runs.
            Middleware(SiteCheck, hosts=settings.server.hosts, origins=settings.server.origins),
            Middleware(TokenAuth, tokens=settings.token_users),
            # Then: what one user may have under way at once.
            Middleware(RequestsPerUser, cap=settings.max_requests_per_user),
        ],
        # Ours serve HTTP and WebSocket alike: None once a socket is closed, which Starlette accepts
        # (it sends what is not None) but types apart.
        exception_handlers=handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
