"""Health endpoints: liveness, readiness and the full application/health+json document."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp_apigami import querystring_schema
from marshmallow import Schema, fields

from server.http import deps
from server.http.guard import GUARD, public
from server.http.openapi import (
    COMMON_PROBLEMS,
    OPTIONAL_BEARER,
    json_response,
    operation,
    problem_responses,
)

HEALTH_CONTENT_TYPE = "application/health+json"
_LIVE_BODY = b'{"status":"pass"}'

routes = web.RouteTableDef()


class HealthQuery(Schema):
    fresh = fields.Bool(
        load_default=False,
        metadata={
            "description": "Run the checks now instead of reusing the cached result. "
            "Honoured for callers allowed to see details."
        },
    )


def may_see_details(request: web.Request) -> bool:
    """Details go to the holder of the health token or the ops token, wherever they call
    from; everyone else sees the status alone."""
    return request.app[GUARD].holds(request, "health_token", "ops_token")


def health_response(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=HEALTH_CONTENT_TYPE,
    )


PASS_EXAMPLE = {"status": "pass"}
FULL_EXAMPLE = {
    "status": "pass",
    "version": "0",
    "releaseId": "0.1.0",
    "serviceId": "btec",
    "description": "btec API",
    "environment": "production",
    "uptime": 12.5,
    "checks": {
        "postgres:responseTime": [
            {
                "componentType": "datastore",
                "observedValue": 0.41,
                "observedUnit": "ms",
                "status": "pass",
                "time": "2026-11-27T16:00:00.000Z",
            }
        ],
        "redis:responseTime": [
            {
                "componentType": "datastore",
                "observedValue": 0.12,
                "observedUnit": "ms",
                "status": "pass",
                "time": "2026-11-27T16:00:00.000Z",
            }
        ],
        "redis:persistence": [
            {
                "componentType": "datastore",
                "observedValue": "aof",
                "status": "pass",
                "time": "2026-11-27T16:00:00.000Z",
            }
        ],
    },
}
FAIL_EXAMPLE = {"status": "fail"}


@operation(
    "health", ok={200: json_response("Alive", PASS_EXAMPLE, HEALTH_CONTENT_TYPE)}, limited=False
)
@public
@routes.get("/api/v1/health/live", name="health_live")
async def live(request: web.Request) -> web.Response:
    """Liveness: the event loop answers

    No I/O. For a liveness probe: restart the process only when this fails.
    """
    return web.Response(body=_LIVE_BODY, content_type=HEALTH_CONTENT_TYPE)


@operation(
    "health",
    security=OPTIONAL_BEARER,
    responses={
        200: json_response("Ready", PASS_EXAMPLE, HEALTH_CONTENT_TYPE),
        503: json_response("Not ready", FAIL_EXAMPLE, HEALTH_CONTENT_TYPE),
        **{k: v for k, v in problem_responses(*COMMON_PROBLEMS).items() if k != 503},
    },
)
@public
@routes.get("/api/v1/health/ready", name="health_ready")
async def ready(request: web.Request) -> web.Response:
    """Readiness: PostgreSQL reachable and migrated, Redis reachable

    503 while a critical check fails or while the process drains on SIGTERM. Results are cached for
    BTEC_HEALTH_CACHE_SECONDS.
    """
    if deps.lifecycle(request).draining:
        return health_response({"status": "fail", "notes": ["draining"]}, 503)
    report = await deps.health(request).report()
    status = "pass" if report.ready else "fail"
    return health_response({"status": status}, 200 if report.ready else 503)


@operation(
    "health",
    security=OPTIONAL_BEARER,
    ok={
        200: json_response("Pass or warn", FULL_EXAMPLE, HEALTH_CONTENT_TYPE),
        503: json_response("Fail", FAIL_EXAMPLE, HEALTH_CONTENT_TYPE),
    },
    limited=False,
)
@querystring_schema(HealthQuery)
@public
@routes.get("/api/v1/health", name="health")
async def health(request: web.Request) -> web.Response:
    """Full health document (application/health+json)

    Anonymous callers get the status only. The checks' details go to holders of BTEC_HEALTH_TOKEN or
    BTEC_OPS_TOKEN as a bearer token, wherever they call from, with the deployment's `environment`
    (BTEC_ENV). `pass` and `warn` answer 200, `fail` answers 503.
    """
    settings = deps.settings(request)
    detailed = may_see_details(request)
    fresh = bool(deps.query(request)["fresh"]) and detailed
    report = await deps.health(request).report(fresh=fresh)
    code = 503 if report.status == "fail" else 200
    if not detailed:
        return health_response({"status": report.status}, code)
    lifecycle = deps.lifecycle(request)
    body = report.document(
        version=settings.release,
        release=settings.release,
        service_id=settings.service_id,
        environment=settings.env,
        uptime=lifecycle.uptime_seconds,
        notes=["draining"] if lifecycle.draining else [],
    )
    return health_response(body, code)
