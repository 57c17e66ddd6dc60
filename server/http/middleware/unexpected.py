"""An exception no one expected: logged by type and place (never its message or traceback,
which may carry data), reported to Sentry, and answered as a 500 that reveals nothing.

Unless the client left first: a connection closed before the request was read or answered
(a body cut short, an upload aborted) is the client's doing, not a fault. It is logged at
info as status 499 (nginx's code for it) and reported nowhere, so it cannot flood Sentry."""

from __future__ import annotations

import traceback

from aiohttp import web

from server.domain.errors import InternalError
from server.http.problems import from_domain
from server.observability import sentry
from server.observability.logging import get_logger

log = get_logger("btec.http")


def internal_error(request: web.Request, exc: Exception, request_id: str) -> web.Response:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
    log.error(
        "unhandled_exception",
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        where=where,
        path=request.path,
    )
    sentry.report(exc, request_id=request_id)
    return from_domain(InternalError("an unexpected error occurred"), request_id)


CLIENT_CLOSED = 499


def client_left(request: web.Request) -> bool:
    """Whether the client has closed the connection."""
    transport = request.transport
    return transport is None or transport.is_closing()


def client_closed(request: web.Request, exc: Exception) -> web.Response:
    """The answer to a request whose client left: never sent, but logged as 499."""
    log.info("client_closed_request", error_type=type(exc).__name__, path=request.path)
    return web.Response(status=CLIENT_CLOSED)
