"""GET /metrics for Prometheus: a bearer token, or direct loopback callers when no token is set."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp_apigami import docs

from server import keys
from server.api.health import FORWARDING_HEADERS
from server.api.openapi import BEARER, COMMON_PROBLEMS, problem_responses
from server.errors import Forbidden, Unauthorized
from server.infra.metrics import METRICS_CONTENT_TYPE
from server.settings import Settings, is_loopback

routes = web.RouteTableDef()

METRICS_EXAMPLE = (
    "# HELP btec_http_requests_total HTTP requests by method, route template and status.\n"
    "# TYPE btec_http_requests_total counter\n"
    'btec_http_requests_total{method="GET",route="/api/v1/health",status="200"} 3.0\n'
)


def authorise(request: web.Request, settings: Settings) -> None:
    token = settings.metrics_token
    if token is None:
        direct = not any(h in request.headers for h in FORWARDING_HEADERS)
        if is_loopback(request.remote) and direct:
            return
        raise Forbidden("metrics are served to loopback callers only; set BTEC_METRICS_TOKEN")
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise Unauthorized(
            "a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
        )
    if not hmac.compare_digest(auth[7:].encode(), token.get_secret_value().encode()):
        raise Forbidden("this token may not read metrics")


@docs(
    tags=["operations"],
    summary="Prometheus metrics (text exposition format)",
    description="Protected by BTEC_METRICS_TOKEN as a bearer token. With no token set, only "
    "direct loopback callers are served. Excluded from the HTTP metrics themselves.",
    security=[{BEARER: []}],
    responses={
        200: {
            "description": "Metrics",
            "content": {"text/plain": {"example": METRICS_EXAMPLE}},
        },
        **problem_responses("unauthorized", "forbidden", *COMMON_PROBLEMS),
    },
)
@routes.get("/metrics", name="metrics")
async def metrics(request: web.Request) -> web.Response:
    authorise(request, request.app[keys.SETTINGS])
    body = request.app[keys.METRICS].render()
    response = web.Response(body=body)
    # CONTENT_TYPE_LATEST carries a charset, which web.Response(content_type=...) rejects.
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response
