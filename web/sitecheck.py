"""Whom the app answers: the host a request names, and the page that sends it.

A server without tokens trusts whoever reaches it, and a browser on this machine reaches it on
behalf of any page it shows. Three checks, before the app (and its token check) runs:

- Host. A page on evil.example whose DNS name the attacker then points at 127.0.0.1 talks to the
  app as its own origin, with `Host: evil.example` (DNS rebinding). Only the allowed host names
  are answered: 400 `bad_host`.
- The chat WebSocket. No CORS protects a WebSocket: a browser opens one to any server from any
  page, and says which page in `Origin`. Only the app's own origin and the allowed ones may:
  403 `forbidden_origin`. Clients that are not browsers send no Origin and pass.
- POST, PUT, PATCH, DELETE. Any page can send a form or a no-cors fetch here. Refused (403
  `forbidden_origin`) when its Origin is another's, or, with no Origin, when `Sec-Fetch-Site`
  says cross-site or same-site. A request with an `Authorization` header passes: a browser adds
  one to a cross-origin request only after a CORS preflight, which this app never grants.

"Same origin" compares the Origin's host and port with the Host header, for http and https
alike, so the app behind a TLS proxy that passes the Host on still knows its own pages.
"""

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from shared_schemas import ErrorCode

from .errors import error_body
from .settings import normal_origin

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a Host header may hold: a name or an address (IPv6 in brackets), and a port.
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_[]:")


def host_name(host: str) -> str | None:
    """The name in a Host header (`Example.com:8000` -> `example.com`, `[::1]:80` -> `::1`);
    None for a header that is not a host."""
    if not host or not set(host) <= HOST_CHARS:
        return None
    try:
        parts = urlsplit(f"//{host}")
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        return None
    return parts.hostname or None


class SiteCheck:
    def __init__(self, app: ASGIApp, hosts: Iterable[str], origins: Iterable[str]) -> None:
        """`hosts`: the names answered (`*` any, `*.example.com` its subdomains); `origins`: the
        other origins allowed, as `web.settings.normal_origin` writes them."""
        hosts = [h.lower() for h in hosts]
        self.app = app
        self.any_host = "*" in hosts
        self.hosts = frozenset(hosts)
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, code, message = refusal
        response = JSONResponse(error_body(code, message), status_code=status)
        if scope["type"] == "http":
            return await response(scope, receive, send)
        websocket = WebSocket(scope, receive, send)
        await websocket.receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:  # the server answers 403, without our body
            await websocket.close(code=1008)

    def refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        """(status, code, message) of why this request is refused; None when it may go on."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.host_allowed(host):
            shown = host[:100] or "(none)"
            return (
                400,
                ErrorCode.BAD_HOST,
                f"This server does not answer to the host {shown!r}. Open it by an address it answers to, "
                "or add the name to COUNCIL_ALLOWED_HOSTS.",
            )
        origin = headers.get("origin")
        if scope["type"] == "websocket":
            refused = origin is not None and not self.origin_allowed(origin, host, headers.get("sec-fetch-site"))
        elif scope["method"] in UNSAFE_METHODS and "authorization" not in headers:
            site = headers.get("sec-fetch-site")
            refused = not self.origin_allowed(origin, host, site) if origin is not None else _cross(site)
        else:
            refused = False
        if not refused:
            return None
        shown = origin[:200] if origin is not None else "another site"
        return (
            403,
            ErrorCode.FORBIDDEN_ORIGIN,
            f"Requests from pages of {shown!r} are not allowed here. Open the app from its own address, "
            "or add that origin to COUNCIL_ALLOWED_ORIGINS.",
        )

    def host_allowed(self, host: str) -> bool:
        name = host_name(host)
        if name is None:
            return False
        return self.any_host or name in self.hosts or name.endswith(self.suffixes)

    def origin_allowed(self, origin: str, host: str, site: str | None) -> bool:
        """An origin in the allowed list, or the request's own (unless the browser says it is not)."""
        normal = normal_origin(origin)
        if normal is None:  # "null" (a sandboxed frame, a file), or not an origin at all
            return False
        if normal in self.origins:
            return True
        scheme = normal.partition(":")[0]
        return normal == normal_origin(f"{scheme}://{host}") and not _cross(site)


def _cross(site: str | None) -> bool:
    """Whether `Sec-Fetch-Site` says the request comes from another origin."""
    return site in ("cross-site", "same-site")
