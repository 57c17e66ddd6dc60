"""The request middleware (id, validation, errors, metrics, access log) and security headers."""

from __future__ import annotations

import itertools
import os
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_apigami import validation_middleware
from aiohttp_apigami.constants import SCHEMAS_ATTR
from multidict import CIMultiDict, istr

from server.config.settings import Settings
from server.domain.errors import DomainError, InternalError
from server.http.keys import REQUEST_ID, USER_ID
from server.http.problems import from_domain, from_http
from server.http.ratelimit import RateLimits, client_ip
from server.observability import sentry
from server.observability.logging import access_wanted, get_logger, log_access, request_id_var
from server.observability.metrics import UNMATCHED_ROUTE, Metrics
from server.ratelimit.limiter import RATELIMIT, RATELIMIT_POLICY

REQUEST_ID_HEADER = istr("X-Request-ID")
SERVER = istr("Server")
CSP = istr("Content-Security-Policy")
CACHE_CONTROL = istr("Cache-Control")
DOCS_PREFIXES = ("/api/docs", "/static/swagger")
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROBE_PREFIX = "/api/v1/health"
UNTRACKED_PATHS = frozenset({"/metrics"})

log = get_logger("btec.http")


# New ids: a random per-process prefix and a counter; unique, 32 hex digits, and cheap.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def request_id_for(header: str | None) -> str:
    """The caller's X-Request-ID when it is safe to echo and log, else a new one."""
    if header is not None and _VALID_REQUEST_ID.fullmatch(header):
        return header
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def request_middleware(
    metrics: Metrics, security: SecurityHeaders, limits: RateLimits
) -> Middleware:
    """The one middleware: request id, input validation, errors as problem+json, RED metrics
    and the access log. One layer instead of several keeps the per-request cost low."""
    http = metrics.http
    counted = metrics.enabled
    has_schemas = _schema_lookup()

    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        request[REQUEST_ID] = rid
        request_id_var.set(rid)
        if sentry.enabled():
            sentry.tag_request(rid)
        tracked = request.path not in UNTRACKED_PATHS
        started = time.perf_counter()
        if tracked and counted:
            http.in_progress += 1
        status = 500
        sent: int | None = None  # body bytes, when known before sending
        decision = pending = None
        try:
            try:
                pending = limits.begin(request)
                if pending is not None and not pending.early:
                    decision = await limits.settle(request, pending)
                try:
                    if has_schemas(request):
                        response = await validation_middleware(request, handler)
                    else:
                        response = await handler(request)
                except Exception:  # a refusal wins over the handler's own failure
                    if pending is not None and decision is None:
                        decision = await limits.settle(request, pending)
                    raise
                if pending is not None and decision is None:  # ran alongside its decision
                    decision = await limits.settle(request, pending)
            except DomainError as exc:
                response = from_domain(exc, rid)
            except web.HTTPException as exc:
                if exc.status < 400:  # redirects leave as raised
                    status = exc.status
                    raise
                response = from_http(exc, rid)
            except Exception as exc:
                _log_unexpected(request, exc)
                sentry.report(exc, request_id=rid)
                response = from_domain(InternalError("an unexpected error occurred"), rid)
            status = response.status
            sent = response.content_length
            if not response.prepared:  # a handler that streamed has sent its headers already
                headers = response.headers
                headers[REQUEST_ID_HEADER] = rid
                security.apply(request.path, headers)
                if decision is not None and pending is not None:
                    headers[RATELIMIT_POLICY] = pending.policy.policy_header
                    headers[RATELIMIT] = decision.state(pending.policy)
            return response
        finally:
            if tracked:
                elapsed = time.perf_counter() - started
                method = request.method if request.method in _KNOWN_METHODS else "OTHER"
                route = route_template(request)
                if counted:
                    http.in_progress -= 1
                    http.observe(method, route, status, elapsed)
                _access(request, method, route, status, elapsed, sent, limits.trusted)

    return handle


def _schema_lookup() -> Callable[[web.Request], bool]:
    """Whether apigami must validate a request, remembered per handler (hasattr is slow)."""
    known: dict[object, bool] = {}  # routed handlers: a bounded set of functions and views

    def has_schemas(request: web.Request) -> bool:
        match_info = request.match_info
        if match_info.route.resource is None:  # 404/405: a new system handler every time
            return False
        handler = match_info.handler
        found = known.get(handler)
        if found is None:
            # @docs leaves an empty list behind; only a non-empty one means validation.
            found = bool(getattr(handler, SCHEMAS_ATTR, None)) or isinstance(handler, type)
            known[handler] = found
        return found

    return has_schemas


def _access(
    request: web.Request,
    method: str,
    route: str,
    status: int,
    elapsed: float,
    sent: int | None,
    trusted: list[Any],
) -> None:
    # Probes run every few seconds: keep them out of INFO logs.
    level = 10 if status < 500 and request.path.startswith(_PROBE_PREFIX) else 20
    if not access_wanted(level):  # probes at INFO: nothing to build
        return
    log_access(
        level,
        {
            "method": method,
            "route": route,
            "path": request.path,
            "status": status,
            "duration_s": round(elapsed, 6),
            "bytes_out": sent,
            "client_ip": client_ip(request, trusted),
            "user_id": request.get(USER_ID),
        },
    )


def _log_unexpected(request: web.Request, exc: Exception) -> None:
    """Type and place of the failure; no traceback or message text, which may carry data."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
    log.error(
        "unhandled_exception",
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        where=where,
        path=request.path,
    )


PrepareHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
NOSNIFF = istr("X-Content-Type-Options")


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

    def apply(self, path: str, headers: CIMultiDict[str]) -> None:
        headers.update(self.fixed)
        is_docs = path.startswith(DOCS_PREFIXES)
        if CSP not in headers:
            headers[CSP] = DOCS_CSP if is_docs else STRICT_CSP
        if not is_docs and CACHE_CONTROL not in headers:
            headers[CACHE_CONTROL] = "no-store"

    def hook(self) -> PrepareHook:
        """on_response_prepare: drop aiohttp's Server header (it is added during prepare, so
        only this hook can remove it) and cover responses a handler prepared itself."""

        async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
            headers = response.headers
            headers.popall(SERVER, None)
            if NOSNIFF not in headers:
                self.apply(request.path, headers)

        return on_prepare
