"""CORS: which browser front ends on other origins may call the API (BTEC_CORS_ORIGINS, an
exact allowlist), answered as one step of the request frame.

- A preflight (`OPTIONS` with an allowed `Origin` and `Access-Control-Request-Method`, for a
  path that has that method) is answered 204 by the frame itself, before the rate limiter and
  the guard: the Fetch standard sends it without credentials, so the deny-by-default guard
  could only refuse it, and its answer is the allowlist's, the same for everyone, made from
  memory without Redis or PostgreSQL. It is not rate limited: a preflight has no token, so it
  could only count against the client's address, where every student behind a school's NAT
  shares one budget and a refused preflight fails a real request that had budget left.
  `Access-Control-Max-Age` lets browsers skip it for 10 minutes. Preflights are counted and
  logged under the route `<preflight>`. Any other OPTIONS (a disallowed origin, a method the
  path does not have) is an ordinary request: the router's 405 or 404, limited as before.
- Every other answer to an allowed origin (errors included, so a browser app can read a
  problem's `code`) carries `Access-Control-Allow-Origin: <that origin>` (never `*`) and
  `Access-Control-Expose-Headers`, from an on_response_prepare hook, which sees the answers
  a handler streamed and aiohttp's own too. With an allowlist, every answer carries `Vary:
  Origin`, with or without `Origin` (the Fetch standard's advice for caches): a disallowed
  origin's answer is then exactly the one without `Origin`.
- No `Access-Control-Allow-Credentials`: btec's tokens travel in `Authorization`, which the
  front end's own code sets (allowed by `Access-Control-Allow-Headers`), not in cookies or
  HTTP auth that the browser would add by itself. Without it a browser never sends ambient
  credentials cross-origin, so even a wrongly allowed origin cannot act in a visitor's name
  with them.

Written here rather than taken from aiohttp-cors, which DESIGN.md names and which does run on
aiohttp 3.14 (0.8.1, March 2025: the first release since 2018, and nothing but dependency
bumps since), because it fights the request frame:
- It answers preflights with an OPTIONS route it adds to each resource. Those routes pass the
  frame's rate limiter and its deny-by-default guard like any other, so every preflight gets
  401 (aio-libs/aiohttp-cors#193 and #481, open since 2018), unless each added route were
  marked public and exempted by the handler's identity, and the public-route list of
  tests/test_architecture.py grew by one route per resource.
- Its headers go only on routes registered with it: the router's own 404 and 405 get none, so
  a browser app cannot read them.
- It sends no `Vary: Origin` (aio-libs/aiohttp-cors#351, open since 2021; the fix, #366, was
  closed unmerged), so a shared cache can hand one origin's answer to another.
- Its OPTIONS routes change every OPTIONS answer, allowed origin or not, `Origin` or none:
  403 instead of the router's 405 with `Allow`.
aiohttp-middlewares's `cors_middleware` (3.0, kept up) answers preflights in a middleware of
its own, but outside the frame they get no request id, metrics or access log, and inside it
they meet the guard; it answers every OPTIONS that names a method 200, disallowed origin or
unknown path too; it sends no `Vary: Origin`; and what it sets on a streamed answer comes
after the headers left. What is written here is only the Fetch standard's header logic for an
exact allowlist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import hdrs, web
from multidict import CIMultiDict, istr

ORIGIN = istr(hdrs.ORIGIN)
VARY = istr(hdrs.VARY)
REQUEST_METHOD = istr(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
ALLOW_ORIGIN = istr(hdrs.ACCESS_CONTROL_ALLOW_ORIGIN)
PREFLIGHT_ROUTE = "<preflight>"  # the `route` of preflights in the metrics and the access log
MAX_AGE = 600  # seconds browsers may reuse a preflight's answer
# The request headers a front end may send: the bearer token, JSON bodies, the conditional
# requests of grades and the catalogue, retries of the test message, its own request id.
ALLOW_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match",
                 "Idempotency-Key", "X-Request-ID")  # fmt: skip
# The answer's headers its code may read (besides the CORS-safelisted ones): what a create
# made, catalogue versions, the rate limits, why a token was refused, the request's id, an
# export's file name.
EXPOSE_HEADERS = ("Location", "ETag", "RateLimit", "RateLimit-Policy", "Retry-After",
                  "WWW-Authenticate", "X-Request-ID", "Content-Disposition")  # fmt: skip
PrepareHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


class Cors:
    """The allowlist, and what it answers: preflights for the frame, the headers of every
    other answer for an on_response_prepare hook."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)
        self.enabled = bool(self.origins)
        self._exposed = {istr(hdrs.ACCESS_CONTROL_EXPOSE_HEADERS): ", ".join(EXPOSE_HEADERS)}
        self._preflight = {
            istr(hdrs.ACCESS_CONTROL_ALLOW_HEADERS): ", ".join(ALLOW_HEADERS),
            istr(hdrs.ACCESS_CONTROL_MAX_AGE): str(MAX_AGE),
            VARY: "Origin",
        }

    def is_preflight(self, request: web.Request) -> bool:
        """Whether the frame answers `request` as a preflight: OPTIONS from an allowed origin
        asking for a method its path has (the router matched no OPTIONS route: 405)."""
        if request.method != hdrs.METH_OPTIONS or request.headers.get(ORIGIN) not in self.origins:
            return False
        wanted = request.headers.get(REQUEST_METHOD)
        return wanted is not None and wanted in _methods_of(request)

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to a preflight `is_preflight` admitted: 204 with the path's methods."""
        headers = CIMultiDict(self._preflight)
        headers[ALLOW_ORIGIN] = request.headers[ORIGIN]
        headers[istr(hdrs.ACCESS_CONTROL_ALLOW_METHODS)] = ", ".join(sorted(_methods_of(request)))
        return web.Response(status=204, headers=headers)

    def hook(self) -> PrepareHook:
        """on_response_prepare: `Vary: Origin` on every answer, and to an allowed origin the
        CORS headers (a preflight's answer has its own)."""

        async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
            headers = response.headers
            if ALLOW_ORIGIN in headers:
                return
            vary_origin(headers)
            origin = request.headers.get(ORIGIN)
            if origin is not None and origin in self.origins:
                headers[ALLOW_ORIGIN] = origin
                headers.update(self._exposed)

        return on_prepare


def vary_origin(headers: CIMultiDict[str]) -> None:
    """Add `Origin` to the answer's `Vary`, keeping what is there."""
    found = headers.get(VARY)
    if found is None:
        headers[VARY] = "Origin"
    elif "origin" not in {v.strip().lower() for v in found.split(",")} and found.strip() != "*":
        headers[VARY] = f"{found}, Origin"


def _methods_of(request: web.Request) -> frozenset[str]:
    """The methods of the request's path when the router answered 405 for its own; else none."""
    refusal = getattr(request.match_info, "http_exception", None)
    if isinstance(refusal, web.HTTPMethodNotAllowed):
        return frozenset(refusal.allowed_methods)
    return frozenset()
