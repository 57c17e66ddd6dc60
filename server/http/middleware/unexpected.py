"""An exception no one expected: logged by type and place (never its message or traceback,
which may carry data), reported to Sentry, and answered as a 500 that reveals nothing."""

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
