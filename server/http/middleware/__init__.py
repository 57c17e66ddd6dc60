"""The request frame: the one middleware every request passes, composed here from named steps
in their order. One frame instead of a middleware per step keeps the per-request cost low (a
measured choice: see perf/frame_bench.py); each step lives in its own module:

1. request_id: the request's id, for the log, Sentry and the response; a CORS preflight
   from an allowed origin (server.http.middleware.cors) is then answered, skipping 2-5;
   after the listener closed (server.platform.lifecycle), a new request on a kept-alive
   connection is refused with 503 `shutting_down`, its body unread, skipping 2-5; the
   requests in flight are counted, for the shutdown to wait for;
2. ratelimit (server.http.ratelimit): the decision is sent to Redis, and awaited before the
   handler (or beside it, for `alongside` GETs of clients with budget to spare);
3. guard (server.http.guard): who may call the route, deny by default;
4. validation: apigami's schemas, for handlers that declare them, after the strings of the
   path and query are checked as JSON strings are (server.http.parsing);
5. the handler;
6. problems (server.http.problems) and unexpected: every error as problem+json, but for a
   client that closed the connection first (logged as 499, never reported to Sentry);
7. security: the headers every response carries, and the rate-limit headers (the CORS
   headers come from cors's on_response_prepare hook, which sees streamed answers too);
   while the server drains, `Connection: close` (the client's next request goes to a server
   that stays);
8. the RED metrics and access_log, for every request but /metrics.

What each step decides about a route (its policy, its access, whether it validates, its
template, its headers) is worked out once per route into a Plan, so a request costs one
lookup for all of them.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server.domain.errors import DomainError, ShuttingDown
from server.http.guard import PUBLIC, Guard
from server.http.middleware import access_log, request_id
from server.http.middleware.cors import Cors
from server.http.middleware.plan import Planner
from server.http.middleware.request_id import REQUEST_ID_HEADER
from server.http.middleware.security import SecurityHeaders
from server.http.middleware.unexpected import (
    CLIENT_CLOSED,
    client_closed,
    client_left,
    internal_error,
)
from server.http.middleware.validation import validate
from server.http.parsing import check_request_text
from server.http.problems import from_domain, from_http
from server.http.ratelimit import RateLimits
from server.observability.logging import get_logger
from server.observability.metrics import Metrics
from server.platform.lifecycle import Lifecycle
from server.ratelimit.limiter import RATELIMIT, RATELIMIT_POLICY

log = get_logger("btec.http")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_frame(
    metrics: Metrics, security: SecurityHeaders, limits: RateLimits, guard: Guard, cors: Cors,
    lifecycle: Lifecycle,
) -> Middleware:  # fmt: skip
    """The frame around every handler: the steps of this module's docstring, in order."""
    http = metrics.http
    counted = metrics.enabled
    plan_of = Planner(security, limits, guard, metrics, cors).plan

    @web.middleware
    async def frame(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id.assign(request)
        plan = plan_of(request)
        started = time.perf_counter()
        if plan.tracked and counted:
            http.in_progress += 1
        status = 500
        response: web.StreamResponse | None = None
        decision = pending = None
        lifecycle.enter()
        try:
            try:
                if lifecycle.closed:
                    lifecycle.refused += 1
                    log.warning("request_refused", request_id=rid, reason="shutting_down")
                    raise ShuttingDown("this server is stopping; send the request again")
                if plan.limit is not None:
                    pending = limits.begin(request, plan.limit)
                    if not pending.early:
                        decision = await limits.settle(request, pending)
                try:
                    if plan.access is not PUBLIC:
                        await guard.admit(request, plan.access)
                    if plan.validated:
                        check_request_text(request)
                        response = await validate(request, handler)
                    elif plan.preflight:
                        response = cors.preflight(request)
                    else:
                        response = await handler(request)
                except Exception:  # a refusal wins over the handler's own failure
                    if pending is not None and decision is None:
                        decision = await limits.settle(request, pending)
                    raise
                if pending is not None and decision is None:  # ran alongside its decision
                    decision = await limits.settle(request, pending)
            except DomainError as exc:
                response = from_domain(exc, rid)
            except web.HTTPException as exc:
                if exc.status < 400:  # redirects leave as raised
                    status = exc.status
                    raise
                response = from_http(exc, rid)
            except asyncio.CancelledError:
                if client_left(request):
                    status = CLIENT_CLOSED
                raise
            except Exception as exc:
                if client_left(request):
                    response = client_closed(request, exc)
                else:
                    response = internal_error(request, exc, rid)
            status = response.status
            if not response.prepared:  # a handler that streamed has sent its headers already
                if lifecycle.draining:
                    response.force_close()
                headers = response.headers
                headers[REQUEST_ID_HEADER] = rid
                plan.headers.apply(headers)
                if decision is not None and pending is not None:
                    headers[RATELIMIT_POLICY] = pending.policy.policy_header
                    headers[RATELIMIT] = decision.state(pending.policy)
            return response
        finally:
            lifecycle.leave()
            if plan.tracked:
                elapsed = time.perf_counter() - started
                method = request.method if request.method in KNOWN_METHODS else "OTHER"
                if counted:
                    http.in_progress -= 1
                    if plan.series is not None:
                        plan.series.observe(status, elapsed)
                    else:
                        http.observe(method, plan.template, status, elapsed)
                access_log.log_request(
                    request, method, plan, status, elapsed, response, limits.trusted
                )

    return frame
