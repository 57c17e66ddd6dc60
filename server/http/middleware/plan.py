"""What the request frame does for each route, worked out once per route: its template, whether
it is counted and logged, its rate-limit policy, its access, whether apigami validates it,
and its security headers. A request then costs one lookup for all of them. A CORS preflight
from an allowed origin gets a plan of its own: no limit, no guard, answered by the frame."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from server.http.guard import PUBLIC, Access, Guard
from server.http.middleware.cors import PREFLIGHT_ROUTE, Cors
from server.http.middleware.security import Headers, SecurityHeaders
from server.http.middleware.validation import declares_schemas
from server.http.ratelimit import Limit, RateLimits
from server.observability.metrics import UNMATCHED_ROUTE, Metrics, Series

UNTRACKED_PATHS = frozenset({"/metrics"})
PROBE_PREFIX = "/api/v1/health"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the frame does for requests to one route."""

    template: str  # the route's template, the metrics' and the log's `route`
    tracked: bool  # counted and logged: all but /metrics
    probe: bool  # a health probe: logged at DEBUG
    limit: Limit | None  # the rate-limit policy (None: exempt)
    access: Access
    validated: bool  # apigami's schemas run before the handler
    headers: Headers
    series: Series | None  # a routed, counted route's metrics (else the frame looks them up)
    preflight: bool = False  # a CORS preflight the frame answers itself (middleware/cors.py)


class Planner:
    """Each route's Plan, made once; the router's 404/405 (a new route object each time)
    get one made for their path, never kept."""

    def __init__(
        self, security: SecurityHeaders, limits: RateLimits, guard: Guard, metrics: Metrics,
        cors: Cors,
    ) -> None:  # fmt: skip
        self.security, self.limits, self.guard, self.metrics = security, limits, guard, metrics
        self.cors = cors
        self.plans: dict[web.AbstractRoute, Plan] = {}

    def plan(self, request: web.Request) -> Plan:
        route = request.match_info.route
        found = self.plans.get(route)
        if found is None:
            found = self._make(request, route)
            if route.resource is not None:
                self.plans[route] = found
        return found

    def _make(self, request: web.Request, route: web.AbstractRoute) -> Plan:
        routed = route.resource is not None
        path = route.resource.canonical if route.resource is not None else request.path
        if not routed and self.cors.is_preflight(request):
            return Plan(PREFLIGHT_ROUTE, True, False, None, PUBLIC, False,
                        self.security.for_path(path), None, preflight=True)  # fmt: skip
        tracked = path not in UNTRACKED_PATHS
        template = path if routed else UNMATCHED_ROUTE
        counted = routed and tracked and self.metrics.enabled
        return Plan(
            template=template,
            tracked=tracked,
            probe=path.startswith(PROBE_PREFIX),
            limit=self.limits.limit_of(request),
            access=self.guard.access(route),
            validated=declares_schemas(route),
            headers=self.security.for_path(path),
            series=self.metrics.http.series(route.method, template) if counted else None,
        )
