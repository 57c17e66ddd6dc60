"""GET /metrics for Prometheus, behind a bearer token (BTEC_METRICS_TOKEN, or the data dir's
own outside production).

`btecctl serve` serves it beside the API; `btecctl worker` serves the same handler alone on
BTEC_WORKER_METRICS_PORT (`worker_metrics_app`), for the counts only the worker has, with the
liveness probe beside it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server.config.settings import SETTINGS, Settings
from server.domain.errors import DomainError, NotFound
from server.http import deps
from server.http.guard import PUBLIC, Guard, operator
from server.http.openapi import operation
from server.http.problems import from_domain, from_http
from server.http.routes.health import live
from server.observability.metrics import METRICS, METRICS_CONTENT_TYPE, Metrics

routes = web.RouteTableDef()
# Set on the app of a listener that serves /metrics alone: a worker's, or one process's of
# `serve --processes N` (whose shared port cannot say which process answers).
OWN_LISTENER: web.AppKey[bool] = web.AppKey("metrics_own_listener", bool)

METRICS_EXAMPLE = (
    "# HELP btec_http_requests_total HTTP requests by method, route template and status.\n"
    "# TYPE btec_http_requests_total counter\n"
    'btec_http_requests_total{method="GET",route="/api/v1/health",status="200"} 3.0\n'
)


@operation(
    "operations",
    ok={
        200: {
            "description": "Metrics",
            "content": {"text/plain": {"example": METRICS_EXAMPLE}},
        }
    },
    problems="not_found",
    limited=False,
)
@operator("metrics_token")
@routes.get("/metrics", name="metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (text exposition format)

    Protected by BTEC_METRICS_TOKEN as a bearer token (outside production, when it is unset, by the
    data dir's own: `<data dir>/secrets/metrics_token`); in production with none set, 403 to
    everyone. Excluded from the HTTP metrics themselves. A 404 `not_found` while
    BTEC_METRICS_ENABLED=false. The metrics catalogue is in runbooks/observability.md.
    """
    found = deps.metrics(request)
    if not found.enabled:
        raise NotFound("metrics are off (BTEC_METRICS_ENABLED=false)")
    processes = deps.settings(request).processes
    if processes > 1 and not request.app.get(OWN_LISTENER, False):
        raise NotFound(
            f"this server runs {processes} processes: scrape each one's own /metrics, listed in "
            "<data dir>/prometheus/btec-api.json (runbooks/scaling.md)"
        )
    response = web.Response(body=found.render())
    # CONTENT_TYPE_LATEST carries a charset, which web.Response(content_type=...) rejects.
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response


def _guarded(guard: Guard) -> Middleware:
    """The worker's listener has no request frame: the guard still admits each request, and
    refusals still leave as problem+json."""

    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            access = guard.access(request.match_info.route)
            if access is not PUBLIC:  # the liveness probe
                await guard.admit(request, access)
            return await handler(request)
        except DomainError as exc:
            return from_domain(exc, None)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return from_http(exc, None)

    return guarded


def worker_metrics_app(settings: Settings, found: Metrics) -> web.Application:
    """/metrics and the liveness probe alone, for `btecctl worker` (a container's liveness
    probe) and each process of `serve --processes N`."""
    app = web.Application(middlewares=[_guarded(Guard(settings))])
    app[SETTINGS] = settings
    app[METRICS] = found
    app[OWN_LISTENER] = True
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/health/live", live)
    return app
