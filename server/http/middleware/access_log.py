"""One access log line per request (probes at DEBUG, so INFO logs stay quiet), with the
client behind trusted proxies and the signed-in user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from server.http.keys import USER_ID
from server.http.ratelimit import client_ip
from server.observability.logging import access_wanted, log_access

if TYPE_CHECKING:
    from server.http.middleware.plan import Plan


def log_request(
    request: web.Request,
    method: str,
    plan: Plan,
    status: int,
    elapsed: float,
    sent: int | None,
    trusted: list[Any],
) -> None:
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
            "bytes_out": sent,
            "client_ip": client_ip(request, trusted),
            "user_id": request.get(USER_ID),
        },
    )
