"""One access log line per request (probes at DEBUG, so INFO logs stay quiet), with the
client behind trusted proxies and the signed-in user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.http.keys import USER_ID
from server.http.ratelimit import client_ip
from server.observability.logging import access_wanted, log_access

PROBE_PREFIX = "/api/v1/health"


def log_request(
    request: web.Request,
    method: str,
    route: str,
    status: int,
    elapsed: float,
    sent: int | None,
    trusted: list[Any],
) -> None:
    level = 10 if status < 500 and request.path.startswith(PROBE_PREFIX) else 20
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
