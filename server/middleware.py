"""Middleware factories: request context (id, access log, metrics), errors, security headers."""

from __future__ import annotations

import asyncio
import re
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server import keys
from server.errors import DomainError, InternalError, from_domain, from_http
from server.infra.logging import ACCESS_LOGGER, get_logger
from server.infra.metrics import UNMATCHED_ROUTE, Metrics
from server.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROBE_PREFIX = "/api/v1/health"
UNTRACKED_PATHS = frozenset({"/metrics"})

log = get_logger("btec.http")
access_log = get_logger(ACCESS_LOGGER)


def request_id_for(header: str | None) -> str:
    """The caller's X-Request-ID when it is safe to echo and log, else a new one."""
    if header is not None and _VALID_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def request_context_middleware(metrics: Metrics) -> Middleware:
    """Request id, contextvars for logs, RED metrics and the access log, in one pass."""

    @web.middleware
    async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        request[keys.REQUEST_ID] = rid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        if request.path in UNTRACKED_PATHS:
            response = await handler(request)
            response.headers[REQUEST_ID_HEADER] = rid
            return response
        started = time.perf_counter()
        metrics.http_in_progress.inc()
        status = 500
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and other non-error HTTP exits
            status = exc.status
            raise
        else:
            status = response.status
            response.headers[REQUEST_ID_HEADER] = rid
            return response
        finally:
            metrics.http_in_progress.dec()
            elapsed = time.perf_counter() - started
            method = request.method if request.method in _KNOWN_METHODS else "OTHER"
            route = route_template(request)
            metrics.http_requests.labels(method, route, str(status)).inc()
            metrics.http_duration.labels(method, route).observe(elapsed)
            _access(request, method, route, status, elapsed)

    return request_context


def _access(request: web.Request, method: str, route: str, status: int, elapsed: float) -> None:
    # Probes run every few seconds: keep them out of INFO logs.
    level = 10 if request.path.startswith(_PROBE_PREFIX) and status < 500 else 20
    if not access_log.isEnabledFor(level):
        return
    access_log.log(
        level,
        "request",
        method=method,
        route=route,
        path=request.path,
        status=status,
        duration_s=round(elapsed, 6),
        client_ip=request.remote,
    )


def error_middleware() -> Middleware:
    """Every error, ours or aiohttp's, leaves as application/problem+json."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request.get(keys.REQUEST_ID)
        try:
            return await handler(request)
        except DomainError as exc:
            return from_domain(exc, rid)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return from_http(exc, rid)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            _log_unexpected(request, exc)
            return from_domain(InternalError("an unexpected error occurred"), rid)

    return errors


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


def security_headers(settings: Settings) -> PrepareHook:
    """on_response_prepare hook: fixed security headers on every response, no Server header."""
    fixed = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-site",
    }
    if settings.https:
        fixed["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    strict_csp = "default-src 'none'; frame-ancestors 'none'"
    docs_csp = (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    )

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers.popall("Server", None)
        headers.update(fixed)
        is_docs = request.path.startswith(("/api/docs", "/static/swagger"))
        headers.setdefault("Content-Security-Policy", docs_csp if is_docs else strict_csp)
        if "Cache-Control" not in headers and not is_docs:
            headers["Cache-Control"] = "no-store"

    return on_prepare
