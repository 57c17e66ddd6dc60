"""One access log line per request (probes at DEBUG, so INFO logs stay quiet), with the
client behind trusted proxies and the signed-in user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from server.http.clientaddr import client_ip
from server.http.keys import USER_ID
from server.observability.logging import access_wanted, log_access

if TYPE_CHECKING:
    from server.http.middleware.plan import Plan


def log_request(
    request: web.Request,
    method: str,
    plan: Plan,
    status: int,
    elapsed: float,
    response: web.StreamResponse | None,
    trusted: list[Any],
) -> None:
    """The line of one request; `response` is None when the request ended in an exception
    that left as raised (a redirect, a cancelled request), its body size then unknown."""
    level = 10 if status < 500 and plan.probe else 20
    if not access_wanted(level):  # probes at INFO: nothing to build
        return
    log_access(
        level,
        {
            "method": method,
            "route": plan.template,
            "path": request.path,
            "status": status,
            "duration_s": round(elapsed, 6),
            "bytes_out": None if response is None else response.content_length,
            "client_ip": client_ip(request, trusted),
            "user_id": request.get(USER_ID),
        },
    )
