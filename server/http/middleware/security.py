"""The headers every response carries (OWASP secure headers): applied in the request frame,
and by an on_response_prepare hook to what a handler prepared itself and to aiohttp's own
answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict, istr

from server.config.settings import Settings

SERVER = istr("Server")
CSP = istr("Content-Security-Policy")
CACHE_CONTROL = istr("Cache-Control")
DOCS_PREFIXES = ("/api/docs", "/static/swagger")
PrepareHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
NOSNIFF = istr("X-Content-Type-Options")


@dataclass(frozen=True, slots=True)
class Headers:
    """The security headers of one kind of response; a handler's own CSP or Cache-Control
    (a download's sandbox, a catalogue's no-cache) stays."""

    fixed: CIMultiDict[str]
    csp: str
    cache_control: str | None
    every: CIMultiDict[str]  # fixed, csp and cache_control together: one update, mostly

    @classmethod
    def of(cls, fixed: CIMultiDict[str], csp: str, cache_control: str | None) -> Headers:
        every = CIMultiDict(fixed)
        every[CSP] = csp
        if cache_control is not None:
            every[CACHE_CONTROL] = cache_control
        return cls(fixed, csp, cache_control, every)

    def apply(self, headers: CIMultiDict[str]) -> None:
        if CSP not in headers and CACHE_CONTROL not in headers:  # most responses
            headers.update(self.every)
            return
        headers.update(self.fixed)
        if CSP not in headers:
            headers[CSP] = self.csp
        if self.cache_control is not None and CACHE_CONTROL not in headers:
            headers[CACHE_CONTROL] = self.cache_control


class SecurityHeaders:
    """The headers every response carries (OWASP secure headers), applied in one call."""

    def __init__(self, settings: Settings) -> None:
        fixed = CIMultiDict(
            {
                NOSNIFF: "nosniff",
                istr("X-Frame-Options"): "DENY",
                istr("Referrer-Policy"): "no-referrer",
                istr("Cross-Origin-Opener-Policy"): "same-origin",
                istr("Cross-Origin-Resource-Policy"): "same-site",
            }
        )
        if settings.https:
            fixed[istr("Strict-Transport-Security")] = "max-age=63072000; includeSubDomains"
        self.fixed = fixed
        self.docs = Headers.of(fixed, DOCS_CSP, None)
        self.api = Headers.of(fixed, STRICT_CSP, "no-store")

    def for_path(self, path: str) -> Headers:
        """The set a response to `path` carries: the API docs' CSP lets Swagger UI run and
        their answers may be cached; every other answer is `no-store` under a strict CSP."""
        if path.startswith(DOCS_PREFIXES):
            return self.docs
        return self.api

    def apply(self, path: str, headers: CIMultiDict[str]) -> None:
        self.for_path(path).apply(headers)

    def hook(self) -> PrepareHook:
        """on_response_prepare: drop aiohttp's Server header (it is added during prepare, so
        only this hook can remove it) and cover responses a handler prepared itself."""

        async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
            headers = response.headers
            headers.popall(SERVER, None)
            if NOSNIFF not in headers:
                self.apply(request.path, headers)

        return on_prepare
