"""GET /metrics for Prometheus: a bearer token, or direct loopback callers when no token is set."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs

from server import keys
from server.api.access import require_operator
from server.api.openapi import BEARER, COMMON_PROBLEMS, problem_responses
from server.infra.metrics import METRICS_CONTENT_TYPE

routes = web.RouteTableDef()

METRICS_EXAMPLE = (
    "# HELP btec_http_requests_total HTTP requests by method, route template and status.\n"
    "# TYPE btec_http_requests_total counter\n"
    'btec_http_requests_total{method="GET",route="/api/v1/health",status="200"} 3.0\n'
)


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
    settings = request.app[keys.SETTINGS]
    require_operator(request, settings.metrics_token, variable="BTEC_METRICS_TOKEN")
    body = request.app[keys.METRICS].render()
    response = web.Response(body=body)
    # CONTENT_TYPE_LATEST carries a charset, which web.Response(content_type=...) rejects.
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response
